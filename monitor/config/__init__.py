"""Load and validate rules.yaml into typed, immutable configuration.

Every problem is reported, not just the first, as one line each (``monitor/config/problems.py``
gives the shape). Each section has its reader: accounts and trading windows (``accounts.py``),
exchange calendars (``calendars.py``), rules (``rules.py``), notify (``sinks.py``, dispatching to
each sink kind's reader beside its sink); ``${ENV}`` references are ``secrets.py``'s. This module
is the public face: the whole file, the top-level fields and the daemon section, and resolving
references.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from monitor.brokers.simulator import BROKER as SIMULATOR
from monitor.calendars import running_out
from monitor.config import secrets
from monitor.config.accounts import AccountConfig, read_accounts, trading_zone
from monitor.config.calendars import read_calendars
from monitor.config.defaults import DEFAULT_LISTEN, DEFAULT_STATE_PATH, SIMULATOR_POLL_EVERY
from monitor.config.errors import ConfigError
from monitor.config.problems import Problems
from monitor.config.routing import SinkConfig
from monitor.config.rules import read_rules
from monitor.config.sinks import read_sinks
from monitor.config.yaml_lines import LineMap, open_regular, read_yaml
from monitor.rules.base import Rule
from monitor.schedule import parse_clock

if TYPE_CHECKING:  # the sink kinds import this package: see config/sinks.py
    from monitor.notify.kind import Destination

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

_TOP_LEVEL = ("timezone", "calendars", "holidays", "accounts", "rules", "notify", "daemon")
_DAEMON_FIELDS = ("state", "listen", "lifecycle", "heartbeat")


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
    lifecycle: bool = False  # POST /-/reload is served (README, "Reloading the configuration")
    warnings: tuple[str, ...] = ()  # the file loads, but should change
    references: tuple[secrets.EnvReference, ...] = ()  # every ${VARIABLE}, in file order
    heartbeat: time | None = None  # daemon.heartbeat: the daily "alive" message, local time

    def warnings_on(self, today: date) -> tuple[str, ...]:
        """The file's warnings, and each calendar in use whose known dates are running out."""
        calendars = {account.window.calendar for account in self.accounts}
        ending = (running_out(calendar, today) for calendar in calendars)
        notes = sorted(f"{self.path}: {note}" for note in ending if note is not None)
        return (*self.warnings, *notes)

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
    calendars = read_calendars(problems, document)
    accounts = read_accounts(problems, document, timezone, calendars)
    rules = read_rules(problems, document)
    sinks = read_sinks(problems, document)
    state_path, listen, lifecycle = _daemon(problems, document)
    heartbeat = _heartbeat(problems, document)
    problems.raise_any()
    warnings = tuple(problems.warnings)
    return Config(
        path, timezone, accounts, rules, sinks, state_path, listen, lifecycle, warnings,
        secrets.references(document), heartbeat,
    )  # fmt: skip


def parse_listen(raw: object) -> tuple[str, int]:
    """``host:port`` for the metrics and health endpoint."""
    if not isinstance(raw, str) or ":" not in raw:
        raise ValueError(f"must be host:port; got {raw!r}")
    host, _, port = raw.rpartition(":")
    if not host or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError(f"must be host:port with a port from 0 (any free) to 65535; got {raw!r}")
    return host.strip("[]"), int(port)


def _daemon(problems: Problems, document: LineMap) -> tuple[Path, tuple[str, int], bool]:
    """The state file, the metrics address and whether the lifecycle endpoint is served."""
    section = document.get("daemon")
    if section is None:
        return DEFAULT_STATE_PATH, DEFAULT_LISTEN, False
    if not isinstance(section, LineMap):
        problems.problem("", "daemon", "must be a mapping", document.line_of("daemon"))
        return DEFAULT_STATE_PATH, DEFAULT_LISTEN, False
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
    lifecycle = section.get("lifecycle", False)
    if not isinstance(lifecycle, bool):
        problems.problem(
            "daemon", "lifecycle", f"must be true or false; got {lifecycle!r}",
            section.line_of("lifecycle"),
        )  # fmt: skip
        lifecycle = False
    return Path(state), listen, lifecycle


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
    """The destinations ``run`` delivers to, with the values of their ``${ENV}`` references."""

    destinations: tuple[Destination, ...]
    secrets: tuple[str, ...] = ()  # every resolved secret, for redaction
    skipped: tuple[str, ...] = ()  # optional entries left out: their variables are unset

    @property
    def sinks(self) -> tuple[SinkConfig, ...]:
        """The destinations' configs, in file order."""
        return tuple(destination.config for destination in self.destinations)


def resolve_notify(config: Config, environ: Mapping[str, str]) -> Notify:
    """Resolve every ``${VAR}`` of the notify section, each kind its own; unset variables are
    a ConfigError (an optional entry's are not: it is left out)."""
    from monitor.notify.registry import SINK_KINDS  # noqa: PLC0415 - see config/sinks.py

    by_kind: dict[str, list[SinkConfig]] = {}
    for sink in config.sinks:
        by_kind.setdefault(sink.kind, []).append(sink)
    destinations: list[Destination] = []
    secret_values: list[str] = []
    skipped: list[str] = []
    problems: list[str] = []
    for kind, sinks in by_kind.items():
        resolution = SINK_KINDS[kind].resolve(config.path, sinks, environ)
        destinations += resolution.destinations
        secret_values += resolution.secrets
        skipped += resolution.skipped
        problems += resolution.problems
    if problems:
        raise ConfigError(problems)
    order = {sink.name: index for index, sink in enumerate(config.sinks)}
    destinations.sort(key=lambda destination: order[destination.config.name])
    return Notify(tuple(destinations), tuple(v for v in secret_values if v), tuple(skipped))
