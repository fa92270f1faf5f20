"""Load and validate rules.yaml into typed, immutable configuration.

Every problem is reported, not just the first, as one line each in the shape
``FILE: rule 'NAME': FIELD: REASON (line N)`` (``account 'ID'`` / ``notify 'NAME'`` for those
sections, nothing for top-level fields). The loader is PyYAML's SafeLoader extended only to keep
line numbers and to reject duplicate keys, which plain YAML would silently overwrite.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from monitor.brokers import FORMATS, LiveSpec
from monitor.brokers.simulator import BROKER as SIMULATOR
from monitor.model import Alert, Severity
from monitor.rules.base import Globs, PositionFilter, Rule, RuleConfigError
from monitor.rules.registry import RULE_KINDS
from monitor.schedule import ALWAYS, PRESETS, Window, parse_clock, parse_days

DEFAULT_POLL_EVERY = timedelta(seconds=5)
SIMULATOR_POLL_EVERY = timedelta(seconds=2)
MIN_POLL_EVERY = timedelta(milliseconds=500)
DEFAULT_STATE_PATH = Path("position-monitor.db")
DEFAULT_LISTEN = ("127.0.0.1", 9650)
BROKERS = (*FORMATS, SIMULATOR)
SINK_KINDS = ("console", "telegram")
TELEGRAM_API_URL = "https://api.telegram.org"

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ENV_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}
_TOP_LEVEL = ("timezone", "holidays", "accounts", "rules", "notify", "daemon")
_FILTERS = ("accounts", "segments", "products", "symbols")
_RULE_COMMON = ("name", "kind", "severity", *_FILTERS)
_ACCOUNT_FIELDS = (
    "id", "broker", "poll_every", "timezone", "credentials", "seed", "base_url", "timeout",
    "connect_timeout", "window", "alert_after",
)  # fmt: skip
# Markets that never close: polled around the clock unless the account sets a window.
_CONSOLE_FIELDS = ("kind", "name", "min_severity", "format", "accounts", "rules")
_TELEGRAM_FIELDS = ("kind", "name", "bot_token", "api_url", "commands", "optional", "chats")
_CHAT_FIELDS = ("chat_id", "name", "min_severity", "accounts", "rules")
# A numeric chat id (groups and channels are negative) or a public @channel username.
_CHAT_ID = re.compile(r"^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31})$")
_ROUND_THE_CLOCK = ("alphapoint", "simulator")
_URL = re.compile(r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
DEFAULT_TIMEOUT = timedelta(seconds=10)
DEFAULT_ALERT_AFTER = timedelta(minutes=1)
DEFAULT_CONNECT_TIMEOUT = timedelta(seconds=5)
MAX_POLL_EVERY = timedelta(days=1)
# Zone names that exist in the database but follow the host, not a market.
_HOST_ZONES = frozenset({"localtime", "posixrules", "Factory"})


class ConfigError(Exception):
    """rules.yaml is not usable; ``problems`` holds one ready-to-print line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """One broker account to poll."""

    id: str
    broker: str
    poll_every: timedelta
    timezone: ZoneInfo
    credentials: Mapping[str, str] = field(default_factory=dict)  # name -> "${ENV_VAR}"
    seed: int = 1  # simulator only
    base_url: str | None = None
    timeout: timedelta | None = None  # total per request; None: derived from poll_every
    options: Mapping[str, object] = field(default_factory=dict)
    connect_timeout: timedelta = DEFAULT_CONNECT_TIMEOUT
    window: Window = ALWAYS
    alert_after: timedelta | None = None  # None: derived from poll_every

    @property
    def failing_after(self) -> timedelta:
        """How long without a good poll, inside the window, before ``poll_failing`` fires."""
        return self.alert_after or max(DEFAULT_ALERT_AFTER, self.poll_every * 3)

    @property
    def request_timeout(self) -> timedelta:
        """Total time one request may take: the configured one, else well under the interval."""
        return self.timeout or min(DEFAULT_TIMEOUT, self.poll_every * 0.8)


@dataclass(frozen=True, slots=True)
class TelegramBotConfig:
    """One Telegram bot: its token reference, API address and whether it answers commands."""

    name: str  # the notify entry's name
    token: str  # "${ENV_VAR}"
    api_url: str = TELEGRAM_API_URL
    commands: bool = True
    # Optional: with its variables unset the bot is left out at start instead of refusing to
    # run, so the bundled rules.yaml can carry a Telegram entry that needs no credentials.
    optional: bool = False


@dataclass(frozen=True, slots=True)
class SinkConfig:
    """One alert destination and the alerts routed to it.

    Each Telegram chat is a destination of its own (``telegram:desk``): its own outbox queue, so
    a chat that is down or blocked never delays another, and order is kept per chat.
    """

    name: str
    kind: str
    min_severity: Severity = Severity.INFO
    format: str = "text"
    accounts: Globs = field(default_factory=Globs)
    rules: Globs = field(default_factory=Globs)
    bot: TelegramBotConfig | None = None  # telegram only
    chat: str | None = None  # telegram only: a chat id, @channel, or "${ENV_VAR}"

    def accepts(self, alert: Alert) -> bool:
        """True when the alert's severity, account and rule are routed here."""
        return (
            alert.severity.rank >= self.min_severity.rank
            and self.accounts.match(alert.account)
            and self.rules.match(alert.rule)
        )


@dataclass(frozen=True, slots=True)
class Config:
    """A validated rules.yaml."""

    path: Path
    timezone: ZoneInfo | None
    accounts: tuple[AccountConfig, ...]
    rules: tuple[Rule, ...]
    sinks: tuple[SinkConfig, ...]
    state_path: Path = DEFAULT_STATE_PATH
    listen: tuple[str, int] = DEFAULT_LISTEN
    holidays: frozenset[date] = frozenset()

    def timezone_for(self, broker: str) -> ZoneInfo:
        """The trading-day zone of an account that sets none: the file's, else the broker's."""
        if self.timezone is not None:
            return self.timezone
        return ZoneInfo(FORMATS[broker].timezone if broker in FORMATS else "Asia/Kolkata")


def simulator_account(config: Config) -> AccountConfig:
    """The account ``run`` watches when rules.yaml configures none."""
    return AccountConfig(
        id="simulator",
        broker=SIMULATOR,
        poll_every=SIMULATOR_POLL_EVERY,
        timezone=config.timezone_for(SIMULATOR),
    )


def resolve_credentials(
    config: Config, account: AccountConfig, environ: Mapping[str, str]
) -> dict[str, str]:
    """The account's credential values from the environment; unset variables are a ConfigError."""
    values, problems = {}, []
    for name, reference in account.credentials.items():
        variable = reference[2:-1]
        value = environ.get(variable, "")
        where = f"{config.path}: account '{account.id}': credentials.{name}"
        if not value:
            problems.append(f"{where}: environment variable {variable} is not set")
        elif any(ord(char) < 32 or ord(char) == 127 for char in value):
            # It would go into HTTP headers on every poll; say so once, without the value.
            problems.append(f"{where}: {variable} contains a control character (a line break?)")
        values[name] = value
    if problems:
        raise ConfigError(problems)
    return values


@dataclass(frozen=True, slots=True)
class Notify:
    """The destinations ``run`` delivers to, with each Telegram bot's values from the env."""

    sinks: tuple[SinkConfig, ...]
    bots: Mapping[str, TelegramBotConfig]  # by notify entry name
    tokens: Mapping[str, str]  # bot name -> token
    chats: Mapping[str, str]  # destination -> chat id
    skipped: tuple[str, ...] = ()  # optional bots left out: their variables are unset


def resolve_notify(config: Config, environ: Mapping[str, str]) -> Notify:
    """Resolve every ``${VAR}`` of the notify section; unset variables are a ConfigError.

    An ``optional`` bot whose variables are unset is left out with its chats, not an error.
    """
    sinks: list[SinkConfig] = []
    bots: dict[str, TelegramBotConfig] = {}
    tokens: dict[str, str] = {}
    chats: dict[str, str] = {}
    skipped: list[str] = []
    problems: list[str] = []
    by_bot: dict[TelegramBotConfig, list[SinkConfig]] = {}
    for sink in config.sinks:
        if sink.bot is None:
            sinks.append(sink)
        else:
            by_bot.setdefault(sink.bot, []).append(sink)
    for bot, destinations in by_bot.items():
        name = bot.name
        where = f"{config.path}: notify '{name}'"
        missing: list[str] = []
        token = _from_env(bot.token, environ, missing)
        values = {d.name: _from_env(str(d.chat), environ, missing) for d in destinations}
        if missing and bot.optional:
            skipped.append(name)
            continue
        problems += [f"{where}: environment variable {v} is not set" for v in missing]
        if any(ord(char) < 32 or ord(char) == 127 for char in token):
            problems.append(f"{where}: bot_token: contains a control character (a line break?)")
        for destination, chat in values.items():
            if chat and not _CHAT_ID.match(chat):
                reason = "is not a chat id (-1001234567890) or @channel"
                problems.append(f"{where}: chat '{destination}': {reason}")
        bots[name], tokens[name] = bot, token
        chats.update(values)
        sinks.extend(destinations)
    by_token: dict[str, str] = {}
    for name, token in tokens.items():
        if token and token in by_token:
            # Two loops polling getUpdates for one bot get 409 Conflict for good, and two
            # pacers together would break Telegram's limits: one entry, several chats.
            problems.append(
                f"{config.path}: notify '{name}': bot_token: the same bot as notify"
                f" '{by_token[token]}'; give one entry several chats instead"
            )
        by_token.setdefault(token, name)
    if problems:
        raise ConfigError(problems)
    order = {sink.name: index for index, sink in enumerate(config.sinks)}
    sinks.sort(key=lambda sink: order[sink.name])
    return Notify(tuple(sinks), bots, tokens, chats, tuple(skipped))


def _from_env(value: str, environ: Mapping[str, str], missing: list[str]) -> str:
    """A literal, or the value of a ``${VAR}`` reference; an unset variable goes to missing."""
    if not _ENV_REFERENCE.match(value):
        return value
    variable = value[2:-1]
    resolved = environ.get(variable, "").strip()
    if not resolved:
        missing.append(variable)
    return resolved


MAX_RULES_BYTES = 1024 * 1024  # a rules file with every account of a desk is a few kB


def open_regular(path: Path) -> BinaryIO:
    """``path`` opened for reading; OSError unless it is a regular file (a FIFO would block, a
    device such as /dev/zero never ends)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens without waiting for a writer
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def load(path: Path) -> Config:
    """Read and validate ``path``; raise ConfigError listing every problem."""
    try:
        with open_regular(path) as file:
            data = file.read(MAX_RULES_BYTES + 1)
        if len(data) > MAX_RULES_BYTES:
            raise ConfigError([f"{path}: cannot read: larger than {MAX_RULES_BYTES} bytes"])
        text = data.decode("utf-8")
    except OSError as err:
        raise ConfigError([f"{path}: cannot read: {err}"]) from err
    except UnicodeDecodeError as err:
        raise ConfigError([f"{path}: cannot read: {err}"]) from err
    try:
        document = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass adding no tags  # nosec B506
    except RecursionError as err:
        raise ConfigError([f"{path}: invalid YAML: nested too deeply"]) from err
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError([f"{path}: invalid YAML: {err.problem}{where}"]) from err
    except yaml.YAMLError as err:
        raise ConfigError([f"{path}: invalid YAML: {err}"]) from err
    return _Validator(path).config(document)


class _LineMap(dict[Any, Any]):
    """A YAML mapping that remembers the line of itself and of each key."""

    line: int = 0
    key_lines: dict[Any, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class _LineList(list[Any]):
    """A YAML sequence that remembers the line of each item."""

    item_lines: list[int]


class _LineLoader(yaml.SafeLoader):
    pass


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _LineMap:
    written = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE_TAG)
    loader.flatten_mapping(node)  # merged (<<) pairs first, then the ones written here
    first_written = len(node.value) - written
    mapping = _LineMap()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    written_keys = set()
    for position, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool):
            raise yaml.constructor.ConstructorError(
                None, None, "mapping keys must be plain scalars", key_node.start_mark
            )
        if position >= first_written:
            # A key written twice is a mistake; a written key overriding a merged one is not.
            if key in written_keys:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            written_keys.add(key)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = key_node.start_mark.line + 1
    return mapping


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> _LineList:
    sequence = _LineList(loader.construct_object(child, deep=True) for child in node.value)
    sequence.item_lines = [child.start_mark.line + 1 for child in node.value]
    return sequence


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


class _Validator:
    """Walks the loaded document once, collecting every problem with its line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[tuple[int, str]] = []

    def problem(self, owner: str, field: str, reason: str, line: int) -> None:
        prefix = f"{self.path}: {owner}: " if owner else f"{self.path}: "
        self.problems.append((line, f"{prefix}{field}: {reason} (line {line})"))

    def config(self, document: object) -> Config:
        if document is None:  # an empty file
            document = _LineMap()
            document.line, document.key_lines = 1, {}
        if not isinstance(document, _LineMap):
            raise ConfigError([f"{self.path}: top level: must be a mapping (line 1)"])
        for key in document:
            if key not in _TOP_LEVEL:
                expected = ", ".join(_TOP_LEVEL)
                self.problem(
                    "",
                    str(key),
                    f"unknown field; expected one of {expected}",
                    document.line_of(key),
                )
        timezone = None
        if "timezone" in document:
            timezone = self.zone(document["timezone"], "", "timezone", document.line_of("timezone"))
        draft = Config(self.path, timezone, (), (), ())
        accounts = self.accounts(document, draft)
        rules = self.rules(document)
        sinks = self.sinks(document)
        state_path, listen = self.daemon(document)
        holidays = self.holidays(document)
        if self.problems:
            # In file order, as an editor would walk them.
            raise ConfigError([text for _, text in sorted(self.problems, key=lambda p: p[0])])
        return Config(self.path, timezone, accounts, rules, sinks, state_path, listen, holidays)

    # -- sections -------------------------------------------------------------------------

    def accounts(self, document: _LineMap, draft: Config) -> tuple[AccountConfig, ...]:
        accounts: list[AccountConfig] = []
        seen: dict[str, int] = {}
        for index, entry in enumerate(self.entries(document, "accounts", required=False)):
            ident = entry.get("id")
            owner = f"account '{ident}'" if isinstance(ident, str) else f"accounts[{index}]"
            before = len(self.problems)
            broker = entry.get("broker")
            live = FORMATS[broker].live if isinstance(broker, str) and broker in FORMATS else None
            for key in entry:
                if key not in _ACCOUNT_FIELDS and (live is None or key not in live.options):
                    self.problem(owner, str(key), "unknown field", entry.line_of(key))
            if not isinstance(ident, str) or not _ID.match(ident):
                reason = "required: letters, digits, '_', '.', '-' (at most 64)"
                self.problem(owner, "id", reason, entry.line_of("id"))
            elif ident in seen:
                reason = f"duplicate of the account on line {seen[ident]}"
                self.problem(owner, "id", reason, entry.line_of("id"))
            else:
                seen[ident] = entry.line
            if broker not in BROKERS:
                got = "missing" if broker is None else f"unknown broker {broker!r}"
                reason = f"{got}; expected one of {', '.join(BROKERS)}"
                self.problem(owner, "broker", reason, entry.line_of("broker"))
            default_every = SIMULATOR_POLL_EVERY if broker == SIMULATOR else DEFAULT_POLL_EVERY
            poll_every = self.duration(
                entry.get("poll_every"), default_every, owner, entry.line_of("poll_every")
            )
            zone = draft.timezone_for(str(broker))
            if "timezone" in entry:
                line = entry.line_of("timezone")
                zone = self.zone(entry["timezone"], owner, "timezone", line) or zone
            credentials = self.credentials(
                entry.get("credentials"), owner, entry.line_of("credentials")
            )
            seed = entry.get("seed", 1)
            if "seed" in entry and broker != SIMULATOR:
                self.problem(
                    owner, "seed", "only the simulator takes a seed", entry.line_of("seed")
                )
            elif isinstance(seed, bool) or not isinstance(seed, int):
                reason = f"must be an integer; got {seed!r}"
                self.problem(owner, "seed", reason, entry.line_of("seed"))
            account = AccountConfig(
                str(ident), str(broker), poll_every, zone, credentials, seed,
                window=self.window(entry, owner, str(broker)),
            )  # fmt: skip
            if "alert_after" in entry:
                line = entry.line_of("alert_after")
                after = self.duration(
                    entry["alert_after"], DEFAULT_ALERT_AFTER, owner, line, "alert_after"
                )
                account = replace(account, alert_after=after)
            if live is not None:
                account = self.live_fields(entry, owner, account, live)
            elif http_only := [f for f in ("base_url", "timeout", "connect_timeout") if f in entry]:
                field = http_only[0]
                self.problem(
                    owner, field, f"{broker} is not polled over HTTP", entry.line_of(field)
                )
            if len(self.problems) == before:
                accounts.append(account)
        return tuple(accounts)

    def window(self, entry: _LineMap, owner: str, broker: str) -> Window:
        """A preset name or ``{days, start, end}``; by default the broker's market hours."""
        raw = entry.get("window", "always" if broker in _ROUND_THE_CLOCK else "nse")
        line = entry.line_of("window")
        if isinstance(raw, str):
            if raw not in PRESETS:
                presets = ", ".join(PRESETS)
                reason = f"unknown preset {raw!r}; expected {presets} or {{days, start, end}}"
                self.problem(owner, "window", reason, line)
                return ALWAYS
            return PRESETS[raw]
        if not isinstance(raw, _LineMap) or set(raw) != {"days", "start", "end"}:
            self.problem(owner, "window", "must be a preset name or {days, start, end}", line)
            return ALWAYS
        try:
            days = parse_days(str(raw["days"]))
            start, end = parse_clock(raw["start"]), parse_clock(raw["end"])
        except ValueError as err:
            self.problem(owner, "window", f'{err} (quote times: "09:15")', line)
            return ALWAYS
        if not start < end:
            self.problem(owner, "window", "start must be before end on the same day", line)
            return ALWAYS
        return Window(days, start, end)

    def holidays(self, document: _LineMap) -> frozenset[date]:
        raw = document.get("holidays")
        if raw is None:
            return frozenset()
        line = document.line_of("holidays")
        if not isinstance(raw, list) or not all(type(d) is date for d in raw):
            self.problem("", "holidays", "must be a list of dates such as 2026-01-26", line)
            return frozenset()
        return frozenset(raw)

    def live_fields(
        self, entry: _LineMap, owner: str, account: AccountConfig, live: LiveSpec
    ) -> AccountConfig:
        """Credentials names, base URL, timeout and options of an account polled over HTTP."""
        line = entry.line_of("credentials")
        for name in live.credentials:
            if name not in account.credentials:
                reason = f'required for {account.broker}: "${{ENV_VAR}}"'
                self.problem(owner, f"credentials.{name}", reason, line)
        for name in account.credentials:
            if name not in live.credentials:
                expected = ", ".join(live.credentials)
                self.problem(owner, f"credentials.{name}", f"unknown; expected {expected}", line)
        raw = entry.get("credentials")
        for name, check in live.credential_checks.items():
            reference = account.credentials.get(name, "")
            # Only a variable that is set can be checked here; run refuses an unset one.
            value = os.environ.get(reference[2:-1], "") if _ENV_REFERENCE.match(reference) else ""
            if not value.strip():
                continue
            try:
                check(value)
            except ValueError as err:
                where = raw.line_of(name) if isinstance(raw, _LineMap) else line
                reason = f"environment variable {reference[2:-1]}: {err}"
                self.problem(owner, f"credentials.{name}", reason, where)
        base_url = entry.get("base_url", live.base_url)
        if not isinstance(base_url, str) or not _URL.match(base_url):
            reason = "required: an http(s) URL" if base_url is None else "not an http(s) URL"
            self.problem(owner, "base_url", reason, entry.line_of("base_url"))
        timeout = None
        if "timeout" in entry:
            line = entry.line_of("timeout")
            timeout = self.duration(entry["timeout"], DEFAULT_TIMEOUT, owner, line, "timeout")
        connect = DEFAULT_CONNECT_TIMEOUT
        if "connect_timeout" in entry:
            line = entry.line_of("connect_timeout")
            raw = entry["connect_timeout"]
            connect = self.duration(raw, connect, owner, line, "connect_timeout")
        options: dict[str, object] = {}
        for name, spec in live.options.items():
            if name not in entry:
                if spec.required:
                    self.problem(owner, name, f"required for {account.broker}", entry.line)
                options[name] = spec.default
                continue
            try:
                options[name] = spec.read(entry[name])
            except ValueError as err:
                self.problem(owner, name, str(err), entry.line_of(name))
        return replace(
            account, base_url=base_url, timeout=timeout, options=options, connect_timeout=connect
        )

    def rules(self, document: _LineMap) -> tuple[Rule, ...]:
        rules: list[Rule] = []
        seen: dict[str, int] = {}
        for index, entry in enumerate(self.entries(document, "rules", required=True)):
            name = entry.get("name")
            owner = f"rule '{name}'" if isinstance(name, str) and name else f"rules[{index}]"
            before = len(self.problems)
            if not isinstance(name, str) or not name.strip():
                self.problem(owner, "name", "required: a non-empty string", entry.line_of("name"))
            elif name in seen:
                reason = f"duplicate of the rule on line {seen[name]}"
                self.problem(owner, "name", reason, entry.line_of("name"))
            else:
                seen[name] = entry.line
            kind = entry.get("kind")
            builder = RULE_KINDS.get(kind) if isinstance(kind, str) else None
            if builder is None:
                got = "missing" if kind is None else f"unknown kind {kind!r}"
                reason = f"{got}; expected one of {', '.join(RULE_KINDS)}"
                self.problem(owner, "kind", reason, entry.line_of("kind"))
            severity = self.severity(entry, owner, Severity.WARNING)
            filters = PositionFilter(**{f: self.globs(entry, f, owner) for f in _FILTERS})
            if builder is None or len(self.problems) > before:
                continue
            options = {k: v for k, v in entry.items() if k not in _RULE_COMMON}
            try:
                rules.append(builder(str(name), severity, filters, options))
            except RuleConfigError as err:
                self.problem(owner, err.field, err.reason, entry.line_of(err.field))
        return tuple(rules)

    def sinks(self, document: _LineMap) -> tuple[SinkConfig, ...]:
        if "notify" not in document:
            return (SinkConfig("console", "console"),)
        sinks: list[SinkConfig] = []
        seen: dict[str, int] = {}
        for index, entry in enumerate(self.entries(document, "notify", required=True)):
            kind = entry.get("kind")
            name = entry.get("name", kind)
            owner = f"notify '{name}'" if isinstance(name, str) else f"notify[{index}]"
            if kind not in SINK_KINDS:
                got = "missing" if kind is None else f"unknown sink kind {kind!r}"
                self.problem(
                    owner,
                    "kind",
                    f"{got}; expected one of {', '.join(SINK_KINDS)}",
                    entry.line_of("kind"),
                )
                continue
            allowed = _TELEGRAM_FIELDS if kind == "telegram" else _CONSOLE_FIELDS
            for key in entry:
                if key not in allowed:
                    self.problem(owner, str(key), "unknown field", entry.line_of(key))
            if not self.unique_name(name, owner, entry, seen):
                continue
            if kind == "telegram":
                sinks.extend(self.telegram(entry, str(name), owner, seen))
                continue
            output = entry.get("format", "text")
            if output not in ("text", "json"):
                self.problem(
                    owner,
                    "format",
                    f"must be text or json; got {output!r}",
                    entry.line_of("format"),
                )
            sinks.append(
                SinkConfig(
                    str(name),
                    str(kind),
                    self.severity(entry, owner, Severity.INFO, "min_severity"),
                    output,
                    self.globs(entry, "accounts", owner),
                    self.globs(entry, "rules", owner),
                )
            )
        return tuple(sinks)

    def unique_name(self, name: object, owner: str, entry: _LineMap, seen: dict[str, int]) -> bool:
        """Check a sink's name; sinks and chats share one namespace (the outbox's)."""
        if not isinstance(name, str) or not _ID.match(name):
            reason = "letters, digits, '_', '.', '-' (at most 64)"
            self.problem(owner, "name", reason, entry.line_of("name"))
            return False
        if name in seen:
            reason = f"duplicate of the sink on line {seen[name]}"
            self.problem(owner, "name", reason, entry.line_of("name"))
            return False
        seen[name] = entry.line
        return True

    def telegram(
        self, entry: _LineMap, name: str, owner: str, seen: dict[str, int]
    ) -> list[SinkConfig]:
        token = entry.get("bot_token")
        if not isinstance(token, str) or not _ENV_REFERENCE.match(token):
            # Never echo the value: it may be the token itself.
            reason = 'required: an environment reference such as "${TELEGRAM_BOT_TOKEN}"'
            self.problem(owner, "bot_token", reason, entry.line_of("bot_token"))
        api_url = entry.get("api_url", TELEGRAM_API_URL)
        if not isinstance(api_url, str) or not _URL.match(api_url):
            reason = f"must be an http(s) URL; got {api_url!r}"
            self.problem(owner, "api_url", reason, entry.line_of("api_url"))
        flags = {}
        for flag, default in (("commands", True), ("optional", False)):
            value = entry.get(flag, default)
            if not isinstance(value, bool):
                self.problem(
                    owner, flag, f"must be true or false; got {value!r}", entry.line_of(flag)
                )
            flags[flag] = value is True
        bot = TelegramBotConfig(
            name, str(token), str(api_url).rstrip("/"), flags["commands"], flags["optional"]
        )
        chats = entry.get("chats")
        if not isinstance(chats, list) or not chats:
            reason = "required: a list with at least one chat"
            self.problem(owner, "chats", reason, entry.line_of("chats"))
            return []
        sinks = []
        for index, chat in enumerate(chats):
            where = f"chats[{index}]"
            if not isinstance(chat, _LineMap):
                self.problem(owner, where, "must be a mapping", entry.line_of("chats"))
                continue
            for key in chat:
                if key not in _CHAT_FIELDS:
                    self.problem(owner, f"{where}.{key}", "unknown field", chat.line_of(key))
            chat_id = chat.get("chat_id")
            if isinstance(chat_id, int) and not isinstance(chat_id, bool):
                chat_id = str(chat_id)
            if not isinstance(chat_id, str) or not (
                _CHAT_ID.match(chat_id) or _ENV_REFERENCE.match(chat_id)
            ):
                reason = (
                    'required: a chat id (-1001234567890), @channel or "${TELEGRAM_CHAT_ID}";'
                    f" got {chat_id!r}"
                )
                self.problem(owner, f"{where}.chat_id", reason, chat.line_of("chat_id"))
            label = chat.get("name", f"chat{index + 1}")
            line = chat.line_of("name")
            if not isinstance(label, str) or not _ID.match(label):
                reason = "letters, digits, '_', '.', '-' (at most 64)"
                self.problem(owner, f"{where}.name", reason, line)
                continue
            destination = f"{name}:{label}"
            if destination in seen:
                reason = f"duplicate of the chat on line {seen[destination]}"
                self.problem(owner, f"{where}.name", reason, line)
                continue
            seen[destination] = chat.line
            sinks.append(
                SinkConfig(
                    destination,
                    "telegram",
                    self.severity(chat, owner, Severity.INFO, "min_severity"),
                    accounts=self.globs(chat, "accounts", owner),
                    rules=self.globs(chat, "rules", owner),
                    bot=bot,
                    chat=str(chat_id),
                )
            )
        return sinks

    def daemon(self, document: _LineMap) -> tuple[Path, tuple[str, int]]:
        section = document.get("daemon")
        if section is None:
            return DEFAULT_STATE_PATH, DEFAULT_LISTEN
        if not isinstance(section, _LineMap):
            self.problem("", "daemon", "must be a mapping", document.line_of("daemon"))
            return DEFAULT_STATE_PATH, DEFAULT_LISTEN
        for key in section:
            if key not in ("state", "listen"):
                self.problem(
                    "daemon",
                    str(key),
                    "unknown field; expected state, listen",
                    section.line_of(key),
                )
        state = section.get("state", str(DEFAULT_STATE_PATH))
        if not isinstance(state, str) or not state:
            self.problem("daemon", "state", "must be a file path", section.line_of("state"))
            state = str(DEFAULT_STATE_PATH)
        listen = DEFAULT_LISTEN
        if "listen" in section:
            try:
                listen = parse_listen(section["listen"])
            except ValueError as err:
                self.problem("daemon", "listen", str(err), section.line_of("listen"))
        return Path(state), listen

    # -- field helpers --------------------------------------------------------------------

    def entries(self, document: _LineMap, section: str, *, required: bool) -> list[_LineMap]:
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
            if isinstance(entry, _LineMap):
                good.append(entry)
            else:
                item_line = value.item_lines[index] if isinstance(value, _LineList) else line
                self.problem("", f"{section}[{index}]", "must be a mapping", item_line)
        return good

    def severity(
        self, entry: _LineMap, owner: str, default: Severity, field: str = "severity"
    ) -> Severity:
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

    def globs(self, entry: _LineMap, field: str, owner: str) -> Globs:
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
        try:
            if not isinstance(raw, str) or raw in _HOST_ZONES:
                raise ValueError
            return ZoneInfo(raw)
        except (ValueError, OSError, ZoneInfoNotFoundError):  # "Asia" is a directory
            self.problem(owner, field, f"unknown IANA time zone {raw!r}", line)
            return None

    def duration(
        self, raw: object, default: timedelta, owner: str, line: int, field: str = "poll_every"
    ) -> timedelta:
        if raw is None:
            return default
        match = (
            _DURATION.match(str(raw))
            if isinstance(raw, str | int | float) and not isinstance(raw, bool)
            else None
        )
        if match is None:
            reason = f"must be a duration like 5s, 500ms or 1m; got {raw!r}"
            self.problem(owner, field, reason, line)
            return default
        seconds = float(match[1]) * _DURATION_UNITS[match[2]]
        if not MIN_POLL_EVERY.total_seconds() <= seconds <= MAX_POLL_EVERY.total_seconds():
            self.problem(owner, field, f"must be from 500ms to 24h; got {raw!r}", line)
            return default
        return timedelta(seconds=seconds)

    def credentials(self, raw: object, owner: str, line: int) -> Mapping[str, str]:
        """Names mapped to ``${ENV_VAR}`` references; a literal secret in the file is refused."""
        if raw is None:
            return {}
        if not isinstance(raw, _LineMap):
            self.problem(owner, "credentials", 'must map names to "${ENV_VAR}" references', line)
            return {}
        for name, value in raw.items():
            if not isinstance(value, str) or not _ENV_REFERENCE.match(value):
                # Never echo the value: it may be the secret itself.
                reason = 'must be an environment reference such as "${KOTAK_ACCESS_TOKEN}"'
                self.problem(owner, f"credentials.{name}", reason, raw.line_of(name))
        return {str(name): str(value) for name, value in raw.items()}


def parse_listen(raw: object) -> tuple[str, int]:
    """``host:port`` for the metrics and health endpoint."""
    if not isinstance(raw, str) or ":" not in raw:
        raise ValueError(f"must be host:port; got {raw!r}")
    host, _, port = raw.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"must be host:port with a port from 0 (any free) to 65535; got {raw!r}")
    return host.strip("[]"), int(port)
