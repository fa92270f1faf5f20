"""The accounts section of rules.yaml: which broker accounts to poll, how often and when."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from zoneinfo import ZoneInfo

from monitor.brokers import FORMATS, LiveSpec
from monitor.brokers.simulator import BROKER as SIMULATOR
from monitor.config import secrets
from monitor.config.calendars import UNNAMED
from monitor.config.defaults import (
    DEFAULT_ALERT_AFTER,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_POLL_EVERY,
    DEFAULT_TIMEOUT,
    DURATION_BOUNDS,
    SIMULATOR_POLL_EVERY,
)
from monitor.config.problems import NAME, NAME_RULE, Problems, is_http_url
from monitor.config.yaml_lines import LineMap
from monitor.schedule import ALWAYS, EXCHANGES, PRESETS, Calendar, Window, parse_clock, parse_days

BROKERS = (*FORMATS, SIMULATOR)
_FIELDS = (
    "id", "broker", "poll_every", "timezone", "credentials", "seed", "base_url", "timeout",
    "connect_timeout", "window", "alert_after",
)  # fmt: skip
_HTTP_FIELDS = ("base_url", "timeout", "connect_timeout")
# Markets that never close: polled around the clock unless the account sets a window.
_ROUND_THE_CLOCK = ("alphapoint", "simulator")


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


def trading_zone(file_zone: ZoneInfo | None, broker: str) -> ZoneInfo:
    """The trading-day zone of an account that sets none: the file's, else the broker's."""
    if file_zone is not None:
        return file_zone
    return ZoneInfo(FORMATS[broker].timezone if broker in FORMATS else "Asia/Kolkata")


def read_accounts(
    problems: Problems,
    document: LineMap,
    file_zone: ZoneInfo | None,
    calendars: Mapping[str, Calendar],
) -> tuple[AccountConfig, ...]:
    """Every well-formed account; each problem of the others goes to ``problems``."""
    accounts: list[AccountConfig] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(problems.entries(document, "accounts", required=False)):
        ident = entry.get("id")
        owner = f"account '{ident}'" if isinstance(ident, str) else f"accounts[{index}]"
        before = len(problems)
        broker = entry.get("broker")
        live = FORMATS[broker].live if isinstance(broker, str) and broker in FORMATS else None
        problems.unknown_fields(entry, owner, (*_FIELDS, *(live.options if live else ())))
        if not isinstance(ident, str) or not NAME.match(ident):
            problems.problem(owner, "id", f"required: {NAME_RULE}", entry.line_of("id"))
        elif ident in seen:
            reason = f"duplicate of the account on line {seen[ident]}"
            problems.problem(owner, "id", reason, entry.line_of("id"))
        else:
            seen[ident] = entry.line
        if broker not in BROKERS:
            got = "missing" if broker is None else f"unknown broker {broker!r}"
            reason = f"{got}; expected one of {', '.join(BROKERS)}"
            problems.problem(owner, "broker", reason, entry.line_of("broker"))
        default_every = SIMULATOR_POLL_EVERY if broker == SIMULATOR else DEFAULT_POLL_EVERY
        poll_every = problems.duration(entry, "poll_every", owner, default_every, DURATION_BOUNDS)
        zone = trading_zone(file_zone, str(broker))
        if "timezone" in entry:
            line = entry.line_of("timezone")
            zone = problems.zone(entry["timezone"], owner, "timezone", line) or zone
        credentials = _credentials(problems, entry, owner)
        seed = entry.get("seed", 1)
        if "seed" in entry and broker != SIMULATOR:
            reason = "only the simulator takes a seed"
            problems.problem(owner, "seed", reason, entry.line_of("seed"))
        elif isinstance(seed, bool) or not isinstance(seed, int):
            reason = f"must be an integer; got {seed!r}"
            problems.problem(owner, "seed", reason, entry.line_of("seed"))
        account = AccountConfig(
            str(ident), str(broker), poll_every, zone, credentials, seed,
            window=_window(problems, entry, owner, str(broker), calendars),
        )  # fmt: skip
        if "alert_after" in entry:
            after = problems.duration(
                entry, "alert_after", owner, DEFAULT_ALERT_AFTER, DURATION_BOUNDS
            )
            account = replace(account, alert_after=after)
        if live is not None:
            account = _live_fields(problems, entry, owner, account, live)
        elif http_only := [f for f in _HTTP_FIELDS if f in entry]:
            reason = f"{broker} is not polled over HTTP"
            problems.problem(owner, http_only[0], reason, entry.line_of(http_only[0]))
        if len(problems) == before:
            accounts.append(account)
    return tuple(accounts)


def _window(
    problems: Problems,
    entry: LineMap,
    owner: str,
    broker: str,
    calendars: Mapping[str, Calendar],
) -> Window:
    """A preset name or ``{days, start, end}`` (and an optional ``calendar``); by default the
    broker's market hours. ``nse`` and ``mcx`` follow their exchange's calendar."""
    raw = entry.get("window", "always" if broker in _ROUND_THE_CLOCK else "nse")
    line = entry.line_of("window")
    if isinstance(raw, str):
        if raw not in PRESETS:
            presets = ", ".join(PRESETS)
            reason = f"unknown preset {raw!r}; expected {presets} or {{days, start, end}}"
            problems.problem(owner, "window", reason, line)
            return ALWAYS
        if raw in EXCHANGES:
            return replace(PRESETS[raw], calendar=calendars[raw])
        return PRESETS[raw]
    custom = {"days", "start", "end"}
    if not isinstance(raw, LineMap) or not custom <= set(raw) <= {*custom, "calendar"}:
        reason = "must be a preset name or {days, start, end} with an optional calendar"
        problems.problem(owner, "window", reason, line)
        return ALWAYS
    try:
        days = parse_days(str(raw["days"]))
        start, end = parse_clock(raw["start"]), parse_clock(raw["end"])
    except ValueError as err:
        problems.problem(owner, "window", f'{err} (quote times: "09:15")', line)
        return ALWAYS
    if not start < end:
        problems.problem(owner, "window", "start must be before end on the same day", line)
        return ALWAYS
    name = raw.get("calendar", UNNAMED)
    if name != UNNAMED and name not in EXCHANGES:
        reason = f"unknown calendar {name!r}; expected {', '.join(EXCHANGES)}"
        problems.problem(owner, "window.calendar", reason, raw.line_of("calendar"))
        return ALWAYS
    return Window(days, start, end, calendar=calendars[name])


def _credentials(problems: Problems, entry: LineMap, owner: str) -> Mapping[str, str]:
    """Names mapped to ``${ENV_VAR}`` references; a literal secret in the file is refused."""
    raw = entry.get("credentials")
    if raw is None:
        return {}
    if not isinstance(raw, LineMap):
        reason = 'must map names to "${ENV_VAR}" references'
        problems.problem(owner, "credentials", reason, entry.line_of("credentials"))
        return {}
    for name, value in raw.items():
        secrets.require_reference(
            problems, value, owner, f"credentials.{name}", raw.line_of(name),
            example="${KOTAK_ACCESS_TOKEN}",
        )  # fmt: skip
    return {str(name): str(value) for name, value in raw.items()}


def _live_fields(
    problems: Problems, entry: LineMap, owner: str, account: AccountConfig, live: LiveSpec
) -> AccountConfig:
    """Credentials names, base URL, timeouts and options of an account polled over HTTP."""
    line = entry.line_of("credentials")
    for name in live.credentials:
        if name not in account.credentials:
            reason = f'required for {account.broker}: "${{ENV_VAR}}"'
            problems.problem(owner, f"credentials.{name}", reason, line)
    for name in account.credentials:
        if name not in live.credentials:
            expected = ", ".join(live.credentials)
            problems.problem(owner, f"credentials.{name}", f"unknown; expected {expected}", line)
    raw = entry.get("credentials")
    for name, check in live.credential_checks.items():
        reference = account.credentials.get(name, "")
        if not secrets.is_reference(reference):
            continue
        # Only a variable that is set can be checked here; run refuses an unset one.
        value = os.environ.get(secrets.variable(reference), "")
        if not value.strip():
            continue
        try:
            check(value)
        except ValueError as err:
            where = raw.line_of(name) if isinstance(raw, LineMap) else line
            reason = f"environment variable {secrets.variable(reference)}: {err}"
            problems.problem(owner, f"credentials.{name}", reason, where)
    base_url = entry.get("base_url", live.base_url)
    if not is_http_url(base_url):
        reason = "required: an http(s) URL" if base_url is None else "not an http(s) URL"
        problems.problem(owner, "base_url", reason, entry.line_of("base_url"))
    timeout = None
    if "timeout" in entry:
        timeout = problems.duration(entry, "timeout", owner, DEFAULT_TIMEOUT, DURATION_BOUNDS)
    connect = problems.duration(
        entry, "connect_timeout", owner, DEFAULT_CONNECT_TIMEOUT, DURATION_BOUNDS
    )
    options: dict[str, object] = {}
    for name, spec in live.options.items():
        if name not in entry:
            if spec.required:
                problems.problem(owner, name, f"required for {account.broker}", entry.line)
            options[name] = spec.default
            continue
        try:
            options[name] = spec.read(entry[name])
        except ValueError as err:
            problems.problem(owner, name, str(err), entry.line_of(name))
    return replace(
        account,
        base_url=base_url,
        timeout=timeout,
        options=options,
        connect_timeout=connect,
    )
