"""The pure heart of a poll: previous snapshot + current snapshot + rule states -> alerts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from monitor.carry import carry_missing
from monitor.diff import diff
from monitor.model import Alert, Change, Snapshot
from monitor.rules.base import Poll, Rule

# How far the wall clock may step back across midnight and the account stay on the day it had
# reached: an NTP correction, not a clock that ran a day ahead and was set right.
STEP_BACK_KEPT = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class DayTurn:
    """The account's trading day after a poll, and how it got there."""

    day: date
    new_day: bool  # the day starts afresh: peaks reset, vanished rows dropped silently
    # The day the account had reached, when this poll left it because the wall clock is well
    # behind it (a clock that ran ahead, a damaged state file); None otherwise.
    left_ahead: date | None = None


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What one good poll means: its changes, the alerts they raise, and the next rule states."""

    snapshot: Snapshot  # the poll's snapshot with the rows it left out carried in (carry.py)
    changes: list[Change]
    alerts: list[Alert]
    states: dict[str, Any]  # by rule name, for the rules that apply to this account
    baseline: bool
    new_day: bool
    trading_day: date  # the account's day after this poll (see next_trading_day)
    left_ahead: date | None = None  # see DayTurn


def trading_day(at: datetime, timezone: ZoneInfo) -> date:
    """The trading day ``at`` falls in: days start at local midnight in ``timezone``."""
    return at.astimezone(timezone).date()


def next_trading_day(
    reached: date | None, last_poll: datetime | None, at: datetime, timezone: ZoneInfo
) -> DayTurn:
    """The account's day for a poll at ``at``, after it had ``reached`` a day with its last
    good poll at ``last_poll``.

    A later wall-clock day starts a new day. A wall clock behind the day reached:
    - stepped back at most STEP_BACK_KEPT since the last poll, to at most STEP_BACK_KEPT before
      that day's midnight (an NTP correction): the account stays on the day reached, so a
      wobbling clock cannot reset the peaks twice;
    - further behind, by one day: the day was reached by a clock that ran ahead. The account
      goes back to the wall clock's day and keeps its peaks (this day's polls since that early
      reset), so the real midnight starts the next day instead of being skipped;
    - by more than one day (a clock or a state file far in the future): nothing kept for that
      day is trusted, and the day starts afresh from the wall clock.
    """
    today = trading_day(at, timezone)
    if reached is None or today >= reached:
        return DayTurn(today, reached is not None and today > reached)
    if today < reached - timedelta(days=1):
        return DayTurn(today, True, reached)
    midnight = datetime.combine(reached, time(), timezone)
    stepped_back = last_poll - at if last_poll is not None else timedelta(0)
    if midnight - at <= STEP_BACK_KEPT and stepped_back <= STEP_BACK_KEPT:
        return DayTurn(reached, False)
    return DayTurn(today, False, reached)


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
    the account had reached; ``next_trading_day`` says whether this poll starts a new one. Rows
    ``current`` left out are carried in (``carry_missing``) before the rules see it.
    """
    baseline = previous is None
    last_poll = previous.taken_at if previous is not None else None
    turn = next_trading_day(previous_day, last_poll, current.taken_at, timezone)
    current, changes = carry_missing(previous, current, diff(previous, current), turn.new_day)
    changed_keys = None
    if previous is not None and not turn.new_day:
        changed_keys = frozenset(c.key for c in changes) | (current.carried ^ previous.carried)
    poll = Poll(current, changes, baseline, turn.new_day, changed_keys)
    alerts: list[Alert] = []
    next_states: dict[str, Any] = {}
    for rule in rules:
        if not rule.filter.accounts.match(current.account):
            continue
        next_states[rule.name], raised = rule.evaluate(states.get(rule.name), poll)
        alerts.extend(raised)
    return Evaluation(
        current, changes, alerts, next_states, baseline, turn.new_day, turn.day, turn.left_ahead
    )
