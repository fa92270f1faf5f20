"""The problem collector: every problem of rules.yaml with its owner, field and line.

Each line reads ``FILE: OWNER: FIELD: REASON (line N)``; the owner is ``rule 'NAME'``,
``account 'ID'``, ``notify 'NAME'`` or ``daemon``, and nothing for top-level fields. Reading
goes on after a problem, so one run reports them all.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor.config.errors import ConfigError
from monitor.config.yaml_lines import LineList, LineMap
from monitor.durations import parse_duration
from monitor.model import Severity
from monitor.rules.base import Globs

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
NAME_RULE = "letters, digits, '_', '.', '-' (at most 64)"
# No user or password in the host part: rules.yaml holds no secret, only ${ENV} references.
_URL = re.compile(r"^https?://[^\s/?#@]+(/[^\s?#]*)?$")
# Zone names that exist in the database but follow the host, not a market.
_HOST_ZONES = frozenset({"localtime", "posixrules", "Factory"})


def is_http_url(value: object) -> bool:
    """True for an ``http(s)://host/path`` string without query, fragment or credentials."""
    return isinstance(value, str) and _URL.match(value) is not None


def shown_url(value: object) -> str:
    """A refused URL as a problem line quotes it: never with the password it may carry."""
    if isinstance(value, str) and "@" in urlsplit(value).netloc:
        return "a URL with a user or password (credentials go in ${ENV} fields)"
    return repr(value)


class Problems:
    """Collects every problem with its line, and reads the fields several sections share."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._found: list[tuple[int, str]] = []
        self.warnings: list[str] = []  # not problems: the file loads, and says this

    def __len__(self) -> int:
        """How many so far: a reader compares counts to leave out an entry with problems."""
        return len(self._found)

    def problem(self, owner: str, field: str, reason: str, line: int) -> None:
        """Record one problem; ``owner`` is empty for a top-level field."""
        prefix = f"{self.path}: {owner}: " if owner else f"{self.path}: "
        self._found.append((line, f"{prefix}{field}: {reason} (line {line})"))

    def warning(self, owner: str, field: str, reason: str, line: int) -> None:
        """Record something the file should change, in the shape of a problem."""
        prefix = f"{self.path}: {owner}: " if owner else f"{self.path}: "
        self.warnings.append(f"{prefix}{field}: {reason} (line {line})")

    def raise_any(self) -> None:
        """ConfigError with every problem in file order, as an editor would walk them."""
        if self._found:
            raise ConfigError([text for _, text in sorted(self._found, key=lambda p: p[0])])

    def entries(self, document: LineMap, section: str, *, required: bool) -> list[LineMap]:
        """The mappings listed under ``section``; anything else in the list is a problem."""
        value = document.get(section)
        line = document.line_of(section)
        if value is None:
            if required:
                self.problem("", section, "required: a list with at least one entry", line)
            return []
        if not isinstance(value, list) or (required and not value):
            self.problem("", section, "must be a list with at least one entry", line)
            return []
        good = []
        for index, entry in enumerate(value):
            if isinstance(entry, LineMap):
                good.append(entry)
            else:
                item_line = value.item_lines[index] if isinstance(value, LineList) else line
                self.problem("", f"{section}[{index}]", "must be a mapping", item_line)
        return good

    def unknown_fields(self, entry: LineMap, owner: str, known: tuple[str, ...]) -> None:
        """A problem for each key of ``entry`` not in ``known``."""
        for key in entry:
            if key not in known:
                self.problem(owner, str(key), "unknown field", entry.line_of(key))

    def severity(
        self, entry: LineMap, owner: str, default: Severity, field: str = "severity"
    ) -> Severity:
        """``info``, ``warning`` or ``critical``; ``default`` when absent or wrong."""
        raw = entry.get(field, default.value)
        try:
            return Severity(raw)
        except ValueError:
            self.problem(
                owner,
                field,
                f"must be info, warning or critical; got {raw!r}",
                entry.line_of(field),
            )
            return default

    def globs(self, entry: LineMap, field: str, owner: str) -> Globs:
        """A non-empty list of names or globs; absent matches everything."""
        raw = entry.get(field)
        if raw is None:
            return Globs()
        if not isinstance(raw, list) or not raw or not all(isinstance(p, str) and p for p in raw):
            self.problem(
                owner, field, "must be a non-empty list of names or globs", entry.line_of(field)
            )
            return Globs()
        return Globs.of(raw)

    def zone(self, raw: object, owner: str, field: str, line: int) -> ZoneInfo | None:
        """An IANA time zone that names a place, not the host's setting."""
        try:
            if not isinstance(raw, str) or raw in _HOST_ZONES:
                raise ValueError
            return ZoneInfo(raw)
        except (ValueError, OSError, ZoneInfoNotFoundError):  # "Asia" is a directory
            self.problem(owner, field, f"unknown IANA time zone {raw!r}", line)
            return None

    def duration(
        self,
        entry: LineMap,
        field: str,
        owner: str,
        default: timedelta,
        bounds: tuple[timedelta, timedelta],
    ) -> timedelta:
        """A duration such as ``5s`` within ``bounds``; ``default`` when absent or wrong."""
        raw = entry.get(field)
        if raw is None:
            return default
        minimum, maximum = bounds
        try:
            return parse_duration(raw, minimum=minimum, maximum=maximum)
        except ValueError as err:
            self.problem(owner, field, str(err), entry.line_of(field))
            return default
