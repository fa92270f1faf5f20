"""The alertmanager entry of rules.yaml: where Alertmanager is, the static labels, the timings
and the credentials (``${ENV}`` references only)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from monitor.config import secrets
from monitor.config.problems import Problems, is_http_url, shown_url
from monitor.config.routing import ROUTING_FIELDS, SinkConfig, SinkEntry
from monitor.config.yaml_lines import LineMap
from monitor.notify.alertmanager.payload import BUILT_IN_LABELS

FIELDS = (
    *ROUTING_FIELDS, "url", "labels", "timeout", "resend_interval", "event_expiry", "basic_auth",
    "bearer_token",
)  # fmt: skip
_BASIC_AUTH_FIELDS = ("username", "password")
# Where the settings' credentials are written in the entry, for the problems that name them.
BASIC_AUTH_PATHS = {name: f"basic_auth.{name}" for name in _BASIC_AUTH_FIELDS}
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")  # Prometheus's label name rule
DEFAULT_TIMEOUT = timedelta(seconds=10)
# Prometheus re-sends firing alerts every minute with endsAt four intervals ahead: a lost post
# or two never lets an alert expire while its condition holds.
DEFAULT_RESEND_INTERVAL = timedelta(minutes=1)
HORIZON_INTERVALS = 4
# An event (a new short, a square-off) is news, not a state: it stays listed long enough to be
# routed, grouped and looked at or silenced, then expires. An hour outlasts Alertmanager's
# default group_wait (30s) and group_interval (5m) many times over.
DEFAULT_EVENT_EXPIRY = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class AlertmanagerSettings:
    """One Alertmanager: its base URL, static labels, timings and credential references."""

    url: str  # without the trailing slash; alerts go to {url}/api/v2/alerts
    labels: tuple[tuple[str, str], ...] = ()
    timeout: timedelta = DEFAULT_TIMEOUT
    resend_interval: timedelta = DEFAULT_RESEND_INTERVAL
    event_expiry: timedelta = DEFAULT_EVENT_EXPIRY
    username: str | None = None  # basic auth: a literal or "${ENV}"
    password: str | None = None  # basic auth: "${ENV}"
    bearer_token: str | None = None  # "${ENV}"

    @property
    def horizon(self) -> timedelta:
        """How long a firing condition stays active in Alertmanager after one post."""
        return self.resend_interval * HORIZON_INTERVALS

    @property
    def static_labels(self) -> Mapping[str, str]:
        """The labels added to every alert."""
        return dict(self.labels)


def read_config(problems: Problems, sink: SinkEntry) -> list[SinkConfig]:
    """An alertmanager entry: one destination."""
    entry, owner = sink.entry, sink.owner
    url = entry.get("url")
    if not is_http_url(url):
        reason = f"required: Alertmanager's http(s) base URL; got {shown_url(url)}"
        problems.problem(owner, "url", reason, entry.line_of("url"))
    second = timedelta(seconds=1)
    timeout = problems.duration(entry, "timeout", owner, DEFAULT_TIMEOUT, (second, 2 * 60 * second))
    resend = problems.duration(
        entry, "resend_interval", owner, DEFAULT_RESEND_INTERVAL, (second, timedelta(hours=1))
    )
    expiry = problems.duration(
        entry, "event_expiry", owner, DEFAULT_EVENT_EXPIRY, (second, timedelta(days=7))
    )
    username, password, bearer = _credentials(problems, entry, owner)
    settings = AlertmanagerSettings(
        str(url).rstrip("/"), _labels(problems, entry, owner), timeout, resend, expiry,
        username, password, bearer,
    )  # fmt: skip
    return [sink.routed(problems, settings)]


def _labels(problems: Problems, entry: LineMap, owner: str) -> tuple[tuple[str, str], ...]:
    """Static labels: Prometheus label names, string values, none of the alerts' own."""
    raw = entry.get("labels", {})
    line = entry.line_of("labels")
    if not isinstance(raw, Mapping):
        problems.problem(owner, "labels", "must be a mapping of label names to strings", line)
        return ()
    found = []
    for name, value in raw.items():
        where = f"labels.{name}"
        line = raw.line_of(name) if isinstance(raw, LineMap) else line
        if not isinstance(name, str) or not _LABEL_NAME.match(name) or name.startswith("__"):
            reason = "a label name is letters, digits and _, not starting with a digit or __"
            problems.problem(owner, where, reason, line)
        elif name in BUILT_IN_LABELS:
            reason = f"every alert sets {name} itself; choose another name"
            problems.problem(owner, where, reason, line)
        elif not isinstance(value, str) or not value:
            reason = f'must be a non-empty string (quote numbers: "1"); got {value!r}'
            problems.problem(owner, where, reason, line)
        else:
            found.append((name, value))
    return tuple(sorted(found))


def _credentials(
    problems: Problems, entry: LineMap, owner: str
) -> tuple[str | None, str | None, str | None]:
    """basic_auth (username, password reference) or a bearer_token reference, not both."""
    basic, bearer = entry.get("basic_auth"), entry.get("bearer_token")
    if bearer is not None:
        secrets.require_reference(
            problems, bearer, owner, "bearer_token", entry.line_of("bearer_token"),
            example="${ALERTMANAGER_TOKEN}",
        )  # fmt: skip
    if basic is None:
        return None, None, None if bearer is None else str(bearer)
    line = entry.line_of("basic_auth")
    if bearer is not None:
        problems.problem(owner, "basic_auth", "give basic_auth or bearer_token, not both", line)
    if not isinstance(basic, LineMap):
        problems.problem(owner, "basic_auth", "must be a mapping: username, password", line)
        return None, None, None
    for key in basic:
        if key not in _BASIC_AUTH_FIELDS:
            problems.problem(owner, f"basic_auth.{key}", "unknown field", basic.line_of(key))
    username = basic.get("username")
    if not isinstance(username, str) or not username:
        reason = 'required: a user name or "${ALERTMANAGER_USER}"'
        problems.problem(owner, "basic_auth.username", reason, basic.line_of("username"))
    password = basic.get("password")
    secrets.require_reference(
        problems, password, owner, "basic_auth.password", basic.line_of("password"),
        example="${ALERTMANAGER_PASSWORD}", required=True,
    )  # fmt: skip
    return str(username), str(password), None
