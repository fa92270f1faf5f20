"""The pure heart of a poll: previous snapshot + current snapshot + rule states -> alerts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from monitor.diff import diff
from monitor.model import Alert, Change, Snapshot
from monitor.rules.base import Poll, Rule


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What one good poll means: its changes, the alerts they raise, and the next rule states."""

    changes: list[Change]
    alerts: list[Alert]
    states: dict[str, Any]  # by rule name, for the rules that apply to this account
    baseline: bool
    new_day: bool
    trading_day: date  # the account's day after this poll; never moves backwards


def trading_day(at: datetime, timezone: ZoneInfo) -> date:
    """The trading day ``at`` falls in: days start at local midnight in ``timezone``."""
    return at.astimezone(timezone).date()


def evaluate_poll(
    previous: Snapshot | None,
    previous_day: date | None,
    current: Snapshot,
    rules: Sequence[Rule],
    states: Mapping[str, Any],
    timezone: ZoneInfo,
) -> Evaluation:
    """Diff ``current`` against ``previous`` and run every rule that applies to the account.

    With no previous snapshot the poll is a silent baseline. ``previous_day`` is the trading day
    the account had reached; a poll on a later day starts a new one. A clock that steps back
    across midnight stays on the day already reached, so a wobbling clock cannot reset peaks
    twice.
    """
    baseline = previous is None
    day = trading_day(current.taken_at, timezone)
    new_day = previous_day is not None and day > previous_day
    if previous_day is not None:
        day = max(day, previous_day)
    changes = diff(previous, current)
    poll = Poll(current, changes, baseline, new_day)
    alerts: list[Alert] = []
    next_states: dict[str, Any] = {}
    for rule in rules:
        if not rule.filter.accounts.match(current.account):
            continue
        next_states[rule.name], raised = rule.evaluate(states.get(rule.name), poll)
        alerts.extend(raised)
    return Evaluation(changes, alerts, next_states, baseline, new_day, day)
