"""Secret references: rules.yaml names environment variables, never the secrets themselves.

A secret is written ``"${VARIABLE}"`` and read from the environment when the daemon starts, so
the file can be shared and committed. A literal in its place is refused without being echoed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from monitor.config.problems import Problems
from monitor.config.yaml_lines import LineList, LineMap

_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")


def is_reference(value: object) -> bool:
    """True for a ``${VARIABLE}`` reference."""
    return isinstance(value, str) and _REFERENCE.match(value) is not None


def variable(reference: str) -> str:
    """The variable a ``${VARIABLE}`` reference names."""
    return reference[2:-1]


def require_reference(
    problems: Problems,
    value: object,
    owner: str,
    field: str,
    line: int,
    *,
    example: str,
    required: bool = False,
) -> None:
    """A problem unless ``value`` is a reference; the value is never echoed: it may be the
    secret itself."""
    if not is_reference(value):
        wanted = "required:" if required else "must be"
        reason = f'{wanted} an environment reference such as "{example}"'
        problems.problem(owner, field, reason, line)


def from_env(value: str, environ: Mapping[str, str], missing: list[str]) -> str:
    """A literal, or the value of a ``${VAR}`` reference; an unset variable goes to missing."""
    if not is_reference(value):
        return value
    resolved = environ.get(variable(value), "").strip()
    if not resolved:
        missing.append(variable(value))
    return resolved


def has_control_character(value: str) -> bool:
    """True when a secret holds a control character, usually a line break pasted with it: it
    would go into an HTTP header or URL on every request."""
    return any(ord(char) < 32 or ord(char) == 127 for char in value)


@dataclass(frozen=True, slots=True)
class EnvReference:
    """One ``${VARIABLE}`` of rules.yaml: where it is and whose it is."""

    variable: str
    section: str  # "accounts" or "notify"
    entry: str  # the account id or the notify entry's name
    field: str  # such as "credentials.access_token" or "chats[0].chat_id"
    line: int
    optional: bool  # an ``optional: true`` notify entry is left out when it is unset

    @property
    def owner(self) -> str:
        """The owner as problem lines name it: ``account 'ID'`` or ``notify 'NAME'``."""
        return f"{'account' if self.section == 'accounts' else 'notify'} '{self.entry}'"

    def unset_line(self, path: Path) -> str:
        """``FILE: OWNER: FIELD: environment variable X is not set (line N)``, as a problem
        line reads."""
        left_out = "; the entry is optional: left out while it is unset" if self.optional else ""
        return (
            f"{path}: {self.owner}: {self.field}: environment variable {self.variable} is not"
            f" set{left_out} (line {self.line})"
        )


def references(document: LineMap) -> tuple[EnvReference, ...]:
    """Every reference of the accounts and notify sections, in file order; whatever kind of
    sink or broker holds it, so a new kind needs nothing here."""
    found: list[EnvReference] = []
    for section, naming in (("accounts", "id"), ("notify", "name")):
        entries = document.get(section)
        if not isinstance(entries, LineList):
            continue
        for entry in entries:
            if not isinstance(entry, LineMap):
                continue
            name = entry.get(naming, entry.get("kind"))
            optional = section == "notify" and entry.get("optional") is True
            for field, value, line in _strings(entry, ""):
                if is_reference(value):
                    found.append(
                        EnvReference(variable(value), section, str(name), field, line, optional)
                    )
    return tuple(sorted(found, key=lambda reference: reference.line))


def _strings(node: object, path: str) -> Iterator[tuple[str, str, int]]:
    """(field path, value, line) of every string under ``node``."""
    if isinstance(node, LineMap):
        for key, value in node.items():
            field = f"{path}.{key}" if path else str(key)
            if isinstance(value, str):
                yield field, value, node.line_of(key)
            else:
                yield from _strings(value, field)
    elif isinstance(node, LineList):
        for index, value in enumerate(node):
            if isinstance(value, str):
                yield f"{path}[{index}]", value, node.item_lines[index]
            else:
                yield from _strings(value, f"{path}[{index}]")


def unset(found: tuple[EnvReference, ...], environ: Mapping[str, str]) -> tuple[EnvReference, ...]:
    """The references whose variable is unset or blank in ``environ``."""
    return tuple(r for r in found if not environ.get(r.variable, "").strip())
