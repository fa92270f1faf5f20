"""Load and validate rules.yaml into typed, immutable configuration.

Every problem is reported, not just the first, as one line each (``monitor/config/problems.py``
gives the shape). Each section has its reader: accounts and trading windows
(``accounts.py``), rules (``rules.py``), notify (``sinks.py``, dispatching to each sink kind's
reader beside its sink); ``${ENV}`` references are ``secrets.py``'s. This module is the public
face: the whole file, the top-level fields and the daemon section, and resolving references.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from zoneinfo import ZoneInfo

from monitor.brokers.simulator import BROKER as SIMULATOR
from monitor.config import secrets
from monitor.config.accounts import AccountConfig, read_accounts, read_holidays, trading_zone
from monitor.config.defaults import DEFAULT_LISTEN, DEFAULT_STATE_PATH, SIMULATOR_POLL_EVERY
from monitor.config.errors import ConfigError
from monitor.config.problems import Problems
from monitor.config.routing import SinkConfig
from monitor.config.rules import read_rules
from monitor.config.sinks import read_sinks
from monitor.config.yaml_lines import LineMap, open_regular, read_yaml
from monitor.notify.telegram import config as telegram  # a module: see sinks.sink_kinds
from monitor.rules.base import Rule
from monitor.schedule import parse_clock

__all__ = [
    "AccountConfig",
    "Config",
    "ConfigError",
    "Notify",
    "SinkConfig",
    "load",
    "open_regular",
    "parse_listen",
    "resolve_credentials",
    "resolve_notify",
    "simulator_account",
]

_TOP_LEVEL = ("timezone", "holidays", "accounts", "rules", "notify", "daemon")
_DAEMON_FIELDS = ("state", "listen", "heartbeat")


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
    references: tuple[secrets.EnvReference, ...] = ()  # every ${VARIABLE}, in file order
    heartbeat: time | None = None  # daemon.heartbeat: the daily "alive" message, local time

    def timezone_for(self, broker: str) -> ZoneInfo:
        """The trading-day zone of an account that sets none: the file's, else the broker's."""
        return trading_zone(self.timezone, broker)


def load(path: Path) -> Config:
    """Read and validate ``path``; raise ConfigError listing every problem."""
    document = read_yaml(path)
    if document is None:  # an empty file
        document = LineMap.empty()
    if not isinstance(document, LineMap):
        raise ConfigError([f"{path}: top level: must be a mapping (line 1)"])
    problems = Problems(path)
    expected = ", ".join(_TOP_LEVEL)
    for key in document:
        if key not in _TOP_LEVEL:
            reason = f"unknown field; expected one of {expected}"
            problems.problem("", str(key), reason, document.line_of(key))
    timezone = None
    if "timezone" in document:
        line = document.line_of("timezone")
        timezone = problems.zone(document["timezone"], "", "timezone", line)
    accounts = read_accounts(problems, document, timezone)
    rules = read_rules(problems, document)
    sinks = read_sinks(problems, document)
    state_path, listen = _daemon(problems, document)
    holidays = read_holidays(problems, document)
    heartbeat = _heartbeat(problems, document)
    problems.raise_any()
    return Config(
        path, timezone, accounts, rules, sinks, state_path, listen, holidays,
        secrets.references(document), heartbeat,
    )  # fmt: skip


def parse_listen(raw: object) -> tuple[str, int]:
    """``host:port`` for the metrics and health endpoint."""
    if not isinstance(raw, str) or ":" not in raw:
        raise ValueError(f"must be host:port; got {raw!r}")
    host, _, port = raw.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"must be host:port with a port from 0 (any free) to 65535; got {raw!r}")
    return host.strip("[]"), int(port)


def _daemon(problems: Problems, document: LineMap) -> tuple[Path, tuple[str, int]]:
    """The state file and the metrics address."""
    section = document.get("daemon")
    if section is None:
        return DEFAULT_STATE_PATH, DEFAULT_LISTEN
    if not isinstance(section, LineMap):
        problems.problem("", "daemon", "must be a mapping", document.line_of("daemon"))
        return DEFAULT_STATE_PATH, DEFAULT_LISTEN
    for key in section:
        if key not in _DAEMON_FIELDS:
            reason = f"unknown field; expected {', '.join(_DAEMON_FIELDS)}"
            problems.problem("daemon", str(key), reason, section.line_of(key))
    state = section.get("state", str(DEFAULT_STATE_PATH))
    if not isinstance(state, str) or not state:
        problems.problem("daemon", "state", "must be a file path", section.line_of("state"))
        state = str(DEFAULT_STATE_PATH)
    listen = DEFAULT_LISTEN
    if "listen" in section:
        try:
            listen = parse_listen(section["listen"])
        except ValueError as err:
            problems.problem("daemon", "listen", str(err), section.line_of("listen"))
    return Path(state), listen


def _heartbeat(problems: Problems, document: LineMap) -> time | None:
    """``daemon.heartbeat``: the local time of the daily "alive" message (README, "Dead man's
    switch"), in the file's ``timezone``."""
    section = document.get("daemon")
    if not isinstance(section, LineMap) or "heartbeat" not in section:
        return None
    try:
        return parse_clock(section["heartbeat"])
    except ValueError as err:
        problems.problem("daemon", "heartbeat", str(err), section.line_of("heartbeat"))
        return None


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
        variable = secrets.variable(reference)
        value = environ.get(variable, "")
        where = f"{config.path}: account '{account.id}': credentials.{name}"
        if not value:
            problems.append(f"{where}: environment variable {variable} is not set")
        elif secrets.has_control_character(value):
            # Say so once, without the value.
            problems.append(f"{where}: {variable} contains a control character (a line break?)")
        values[name] = value
    if problems:
        raise ConfigError(problems)
    return values


@dataclass(frozen=True, slots=True)
class Notify:
    """The destinations ``run`` delivers to, with each Telegram bot's values from the env."""

    sinks: tuple[SinkConfig, ...]
    bots: Mapping[str, telegram.TelegramBotConfig]  # by notify entry name
    tokens: Mapping[str, str]  # bot name -> token
    chats: Mapping[str, str]  # destination -> chat id
    skipped: tuple[str, ...] = ()  # optional bots left out: their variables are unset


def resolve_notify(config: Config, environ: Mapping[str, str]) -> Notify:
    """Resolve every ``${VAR}`` of the notify section; unset variables are a ConfigError.

    An ``optional`` bot whose variables are unset is left out with its chats, not an error.
    """
    sinks: list[SinkConfig] = []
    bots: dict[str, telegram.TelegramBotConfig] = {}
    tokens: dict[str, str] = {}
    chats: dict[str, str] = {}
    skipped: list[str] = []
    problems: list[str] = []
    by_bot: dict[telegram.TelegramBotConfig, list[SinkConfig]] = {}
    for sink in config.sinks:
        if sink.bot is None:
            sinks.append(sink)
        else:
            by_bot.setdefault(sink.bot, []).append(sink)
    for bot, destinations in by_bot.items():
        name = bot.name
        where = f"{config.path}: notify '{name}'"
        missing: list[str] = []
        token = secrets.from_env(bot.token, environ, missing)
        values = {d.name: secrets.from_env(str(d.chat), environ, missing) for d in destinations}
        if missing and bot.optional:
            skipped.append(name)
            continue
        problems += [f"{where}: environment variable {v} is not set" for v in missing]
        if secrets.has_control_character(token):
            problems.append(f"{where}: bot_token: contains a control character (a line break?)")
        for destination, chat in values.items():
            if chat and not telegram.is_chat_id(chat):
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
