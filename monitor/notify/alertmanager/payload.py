"""Alerts as Alertmanager's API v2 takes them (``POST /api/v2/alerts``): pure, time passed in.

Alertmanager treats one label set as one alert, so every post of the same condition (its first
alert, its repeats, the re-posts that keep it active, its resolution) carries the same labels,
and two replicas posting the same alert make one alert there.

- A firing condition is active until ``now + horizon`` and is re-posted before then for as long
  as it fires, as Prometheus does with its rules' alerts; a daemon that stops re-posting lets it
  expire rather than fire for ever.
- A resolved condition is posted with ``endsAt`` its resolve time: resolved at once.
- An event alert is active from its delivery for ``event_expiry``, then expires by itself.
  Its ``endsAt`` counts from the delivery, not the event: an alert delivered after an outage
  must still be active, or Alertmanager would take it as already over and page nobody.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from monitor.model import Alert, AlertState, PositionKey, json_number
from monitor.rules.conditions import FiringCondition
from monitor.rules.registry import CONDITION_KINDS

Labels = dict[str, str]
Postable = dict[str, Any]

BUILT_IN_LABELS = (
    "alertname",
    "rule_kind",
    "severity",
    "account",
    "exchange_segment",
    "token",
    "product",
    "symbol",
)
"""The labels every alert's own values fill; static labels may not name them."""


def labels(
    rule: str,
    kind: str,
    severity: str,
    account: str,
    key: PositionKey | None,
    symbol: str | None,
    static: Mapping[str, str],
) -> Labels:
    """The label set of one alert; a position's fields only where it has them (an empty label
    is no label to Alertmanager, so empty values are left out)."""
    found: Labels = {"alertname": rule, "rule_kind": kind, "severity": severity}
    found["account"] = account
    if key is not None:
        found |= {"exchange_segment": key.exchange_segment, "token": key.token}
        found["product"] = key.product
    if symbol is not None:
        found["symbol"] = symbol
    return {name: value for name, value in {**found, **static}.items() if value}


def alert_labels(alert: Alert, static: Mapping[str, str]) -> Labels:
    """The label set of a delivered alert."""
    return labels(
        alert.rule, alert.kind, str(alert.severity), alert.account, alert.key, alert.symbol,
        static,
    )  # fmt: skip


def condition_labels(condition: FiringCondition, static: Mapping[str, str]) -> Labels:
    """The label set of a condition firing now: the same as its alerts'."""
    return labels(
        condition.rule, condition.kind, str(condition.severity), condition.account,
        condition.key, condition.symbol, static,
    )  # fmt: skip


def alert_annotations(alert: Alert) -> dict[str, str]:
    """``summary`` the message, ``details`` the alert's details as JSON."""
    details = {name: json_number(value) for name, value in alert.details.items()}
    text = json.dumps(details, ensure_ascii=False, allow_nan=False, sort_keys=True)
    return {"summary": alert.message, "details": text}


def postable(
    alert: Alert,
    static: Mapping[str, str],
    *,
    now: datetime,
    horizon: timedelta,
    event_expiry: timedelta,
) -> Postable:
    """One delivered alert as Alertmanager takes it, ``now`` the time of the post."""
    if alert.state is AlertState.RESOLVED:
        ends = alert.at
    elif alert.kind in CONDITION_KINDS:
        ends = max(alert.at, now) + horizon
    else:
        ends = max(alert.at, now) + event_expiry
    return {
        "labels": alert_labels(alert, static),
        "annotations": alert_annotations(alert),
        "startsAt": alert.at.isoformat(),
        "endsAt": ends.isoformat(),
    }


def still_firing(posted: Postable, *, now: datetime, horizon: timedelta) -> Postable:
    """A firing condition's last post again, active until ``now + horizon``."""
    return {**posted, "endsAt": (now + horizon).isoformat()}


def condition_postable(
    condition: FiringCondition, static: Mapping[str, str], *, now: datetime, horizon: timedelta
) -> Postable:
    """A condition firing now that this process has not posted (it fired before a restart):
    its labels, since when it fires, and a summary saying so."""
    return {
        "labels": condition_labels(condition, static),
        "annotations": {"summary": f"{condition.rule} firing since {condition.since.isoformat()}"},
        "startsAt": condition.since.isoformat(),
        "endsAt": (now + horizon).isoformat(),
    }
