"""What every condition kind shares: subjects, filters, unknown MTM, stored state and alerts.

A condition kind (``mtm_drawdown``, ``mtm_below``, ``mtm_above``, ``position_limit``) says in
``assess`` whether its condition holds for one subject at one poll; this base runs the
lifecycle (``lifecycle.step``) per subject and turns its transitions into alerts.

The subject is the account (``scope: account``: MTM summed over the rows that pass the filters,
0 when none do) or each position (``scope: position``). A subject whose MTM is unknown (a
counted row without a price) is not evaluated and keeps its state, unless the kind needs no
MTM. A new trading day resets every subject silently; a position's state ends silently when its
row is removed.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import msgspec

from monitor.model import (
    ZERO,
    Alert,
    AlertState,
    DetailValue,
    Position,
    PositionKey,
    Severity,
    Snapshot,
)
from monitor.rules.base import Poll, PositionFilter, Rule, RuleConfigError, describe
from monitor.rules.lifecycle import (
    INACTIVE,
    LIFECYCLE_OPTIONS,
    Condition,
    Lifecycle,
    Outcome,
    Transition,
    at_rest,
    read_lifecycle,
    step,
)


class Scope(enum.StrEnum):
    ACCOUNT = "account"
    POSITION = "position"


class Tracked(msgspec.Struct, frozen=True, gc=False):
    """One subject's condition, and the day's peak MTM for a kind that measures from it."""

    condition: Condition
    peak: Decimal | None = None


UNTRACKED = Tracked(INACTIVE)

# Keyed by position key, or None for the whole account. A subject without an entry is inactive
# with no peak (UNTRACKED, the one object for it): only subjects with something to remember are
# kept.
ConditionState = dict[PositionKey | None, Tracked]


@dataclass(frozen=True, slots=True)
class ConditionRule:
    """The fields every condition rule has, and the evaluation every condition kind shares.

    A kind judges one figure per subject: ``measure`` gives it for a row (MTM by default), and
    the account's is the sum over the rows the rule counts. A subject whose figure is unknown
    is not evaluated that poll.

    Only what can have moved is judged again. Given the state it made of the previous snapshot
    of the same day, a position-scope rule judges the rows in ``Poll.changed_keys`` and the
    subjects whose condition is not at rest (``lifecycle.at_rest``: pending, counting
    ``keep_firing_for`` or firing with a ``repeat_interval``, which time moves), and carries
    every other subject's state forward; an account-scope rule whose condition is at rest is
    not judged when no row changed. That is exact because ``assess`` is settled: the same
    figure with the peak the last poll kept gives that poll's outcome and peak again, and a
    condition at rest stays as it is on that outcome whatever the time. Without such a state
    (the first poll, a rule new to a reload, a baseline, a new day) every subject is judged.
    """

    kind: ClassVar[str]  # the rule kind string used in rules.yaml and alerts
    title: ClassVar[str]  # what an alert calls the condition: "MTM drawdown"

    name: str
    severity: Severity
    filter: PositionFilter
    scope: Scope
    lifecycle: Lifecycle

    def measure(self, position: Position) -> Decimal | None:
        """The figure this kind judges for one row: its MTM, None when unknown."""
        return position.mtm

    def assess(self, figure: Decimal, peak: Decimal | None) -> tuple[Outcome, Decimal | None]:
        """Whether the condition holds for a subject with this figure, and the peak to keep
        after this poll (for a kind that measures from one; else None).

        It must be settled: called again with the same figure and the peak it returned, it
        returns the same outcome and peak. Rows that did not change are not judged again (see
        the class), so a kind that is not settled would be judged on stale outcomes."""
        raise NotImplementedError

    def figures(self, figure: Decimal, peak: Decimal | None) -> tuple[str, dict[str, DetailValue]]:
        """The figures an alert shows, as text and as details."""
        raise NotImplementedError

    def evaluate(
        self, state: ConditionState | None, poll: Poll
    ) -> tuple[ConditionState, list[Alert]]:
        """Advance every subject's condition with this poll; alert on its transitions."""
        changed = poll.changed_keys
        if state is None or changed is None or poll.baseline or poll.new_day:
            # Not this rule's state of the previous snapshot of the day: judge every subject.
            previous: ConditionState = {} if state is None or poll.new_day else state
            if self.scope is Scope.ACCOUNT:
                return self._evaluate_account(previous, poll)
            judged, alerts = self._judge_rows(previous, poll, poll.snapshot.positions)
            return {k: t for k, t in judged.items() if t is not UNTRACKED}, alerts
        if self.scope is Scope.ACCOUNT:
            if not changed and at_rest(state.get(None, UNTRACKED).condition, self.lifecycle):
                return state, []
            return self._evaluate_account(state, poll)
        return self._evaluate_changed_rows(state, poll, changed)

    def _evaluate_account(
        self, previous: ConditionState, poll: Poll
    ) -> tuple[ConditionState, list[Alert]]:
        counted = (self.filter, type(self).measure)  # the same rows, measured the same way
        if counted in poll.sums:
            figure = poll.sums[counted]
        else:
            figure = poll.sums[counted] = self.account_figure(poll.snapshot)
        if figure is None:
            return previous, []
        tracked, alert = self._advance(previous.get(None, UNTRACKED), figure, None, poll)
        alerts = [] if alert is None else [alert]
        return ({} if tracked is UNTRACKED else {None: tracked}), alerts

    def _evaluate_changed_rows(
        self, previous: ConditionState, poll: Poll, changed: frozenset[PositionKey]
    ) -> tuple[ConditionState, list[Alert]]:
        """Judge the rows that changed and the subjects not at rest; carry the others' state
        forward and drop the state of rows no longer in the snapshot."""
        positions = poll.snapshot.positions
        lifecycle = self.lifecycle
        due = {key for key in changed if key in positions}
        due.update(
            key
            for key, tracked in previous.items()
            # Most subjects are inactive: the identity check spares them the call.
            if tracked.condition is not INACTIVE
            and not at_rest(tracked.condition, lifecycle)
            and key is not None
            and key in positions
        )
        # A subject's row leaves the snapshot only by a change: a removal.
        gone = [key for key in changed if key in previous and key not in positions]
        keys: Iterable[PositionKey] = due
        if len(due) > 1:  # in the snapshot's row order, the order its alerts are listed in
            keys = [key for key in positions if key in due]
        judged, alerts = self._judge_rows(previous, poll, keys)
        moved = [(k, t) for k, t in judged.items() if t is not previous.get(k, UNTRACKED)]
        if not (moved or gone):
            return previous, alerts  # the very same state: the store's comparison is one check
        state = dict(previous)
        for key in gone:
            del state[key]
        for key, tracked in moved:
            if tracked is UNTRACKED:
                del state[key]  # it moved, so it had an entry
            else:
                state[key] = tracked
        return state, alerts

    def _judge_rows(
        self, previous: ConditionState, poll: Poll, keys: Iterable[PositionKey]
    ) -> tuple[dict[PositionKey, Tracked], list[Alert]]:
        """The condition of each row of ``keys`` (in the snapshot's order) after this poll,
        UNTRACKED for a row the filters leave out, and the alerts in that order."""
        judged: dict[PositionKey, Tracked] = {}
        alerts = []
        positions = poll.snapshot.positions
        check_filter = self.filter.filters_positions
        # A carried row went missing from this answer (docs/architecture.md, "Rows that vanish"):
        # it keeps its state rather than being judged on figures the broker did not report.
        carried = poll.snapshot.carried
        measure, advance = self.measure, self._advance  # looked up once: this runs per row
        for key in keys:
            position = positions[key]
            if check_filter and not self.filter.allows(position):
                judged[key] = UNTRACKED
                continue
            tracked = previous.get(key, UNTRACKED)
            figure = measure(position)
            if figure is not None and key not in carried:
                tracked, alert = advance(tracked, figure, position, poll)
                if alert is not None:
                    alerts.append(alert)
            judged[key] = tracked
        return judged, alerts

    def account_figure(self, snapshot: Snapshot) -> Decimal | None:
        """The account's figure: the sum over the positions this rule counts (0 when none),
        or None if any is unknown."""
        check_filter = self.filter.filters_positions
        total = ZERO
        for position in snapshot.positions.values():
            if check_filter and not self.filter.allows(position):
                continue
            figure = self.measure(position)
            if figure is None:
                return None
            total += figure
        return total

    def _advance(
        self, tracked: Tracked, figure: Decimal, position: Position | None, poll: Poll
    ) -> tuple[Tracked, Alert | None]:
        outcome, peak = self.assess(figure, tracked.peak)
        before = tracked.condition
        condition, transition = step(before, outcome, poll.snapshot.taken_at, self.lifecycle)
        # Identity, not equality: comparing Decimals with None goes through slow ABC checks,
        # and both step and assess hand back the very objects they got when nothing moved.
        if condition is not before or peak is not tracked.peak:
            tracked = (
                UNTRACKED if condition is INACTIVE and peak is None else Tracked(condition, peak)
            )
        if transition is Transition.NONE:
            return tracked, None
        if transition is Transition.RESOLVED and not self.lifecycle.send_resolved:
            return tracked, None
        text, details = self.figures(figure, peak)
        alert = self._alert(poll, position, text, details, transition, before.firing_since)
        return tracked, alert

    def _alert(
        self,
        poll: Poll,
        position: Position | None,
        text: str,
        details: dict[str, DetailValue],
        transition: Transition,
        since: datetime | None,
    ) -> Alert:
        """A firing alert; a repeat or a resolved one also says since when it fired."""
        snapshot = poll.snapshot
        subject = f"account {snapshot.account}" if position is None else describe(position)
        headline = f"{self.title} on {subject}"
        state = AlertState.FIRING
        if since is not None:  # a repeat or a resolution of a condition that fired
            details["since"] = since.isoformat()
            if transition is Transition.REPEATED:
                headline = f"Still: {headline} since {since.strftime('%H:%M:%S')}"
        if transition is Transition.RESOLVED:
            headline = f"Resolved: {headline}"
            state = AlertState.RESOLVED
        return Alert(
            rule=self.name,
            kind=self.kind,
            severity=self.severity,
            account=snapshot.account,
            key=None if position is None else position.key,
            symbol=None if position is None else position.symbol,
            at=snapshot.taken_at,
            message=f"{headline}: {text}",
            details=details,
            state=state,
        )

    def dump_state(self, state: ConditionState) -> object:
        """Rows of [segment, token, product, peak, pending_since, firing_since, last_sent,
        clear_since]; the account row has null keys, instants are ISO text."""
        return [_row(key, tracked) for key, tracked in state.items()]

    def dump_entries(
        self, before: ConditionState | None, after: ConditionState
    ) -> dict[str, object | None]:
        """The rows of ``dump_state`` that changed since ``before``, by entry name (the row's
        key columns), and None for a subject no longer kept; every row when ``before`` is None.
        The store keeps them one by one: a poll writes only the subjects that moved."""
        if after is before:  # a poll that moved nothing hands back the state it got
            return {}
        entries: dict[str, object | None] = {}
        previous = before or {}
        kept = 0
        for key, tracked in after.items():
            old = previous.get(key)
            if old is not None:
                kept += 1
            # Most subjects are carried forward as the very same object: identity settles them.
            if before is None or (old is not tracked and old != tracked):
                entries[_entry(key)] = _row(key, tracked)
        if kept < len(previous):  # a subject of ``before`` is gone: resolved, removed, new day
            for key in previous.keys() - after.keys():
                entries[_entry(key)] = None
        return entries

    def resting(self, state: ConditionState | None) -> bool:
        """Whether every subject is at rest (``lifecycle.at_rest``); never for a state this rule
        has not judged yet."""
        if state is None:
            return False
        lifecycle = self.lifecycle
        return all(
            t.condition is INACTIVE or at_rest(t.condition, lifecycle) for t in state.values()
        )

    def load_state(self, account: str, data: object) -> ConditionState:
        """The inverse of ``dump_state`` for the account that owns the stored rows."""
        if not isinstance(data, list):
            raise TypeError(f"stored {self.kind} state must be a list, not {type(data).__name__}")
        state: ConditionState = {}
        for segment, token, product, peak, *instants in data:
            key = None if segment is None else PositionKey(account, segment, token, product)
            pending, firing, last_sent, clear = (_instant(i) for i in instants)
            condition = Condition(pending, firing, last_sent, clear)
            if condition != INACTIVE or peak is not None:
                state[key] = Tracked(condition, None if peak is None else Decimal(peak))
        return state


def _row(key: PositionKey | None, tracked: Tracked) -> list[object]:
    condition = tracked.condition
    instants = (
        condition.pending_since, condition.firing_since, condition.last_sent,
        condition.clear_since,
    )  # fmt: skip
    return [
        *(key[1:] if key is not None else (None, None, None)),
        None if tracked.peak is None else str(tracked.peak),
        *(None if i is None else i.isoformat() for i in instants),
    ]


def _entry(key: PositionKey | None) -> str:
    return json.dumps(list(key[1:]) if key is not None else [None, None, None])


def _instant(text: object) -> datetime | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise TypeError(f"stored instant must be text, not {type(text).__name__}")
    return datetime.fromisoformat(text)


def read_common(
    kind: str,
    options: Mapping[str, object],
    own: frozenset[str],
    scopes: tuple[Scope, ...] = (Scope.ACCOUNT, Scope.POSITION),
) -> tuple[Scope, Lifecycle]:
    """The ``scope`` and lifecycle options every condition kind takes, after refusing a field
    that is neither these nor one of the kind's ``own``; the first scope is the default."""
    unknown = set(options) - own - LIFECYCLE_OPTIONS - {"scope"}
    if unknown:
        raise RuleConfigError(sorted(unknown)[0], f"unknown field for kind {kind}")
    raw = options.get("scope", scopes[0].value)
    if raw not in {s.value for s in scopes}:
        if len(scopes) == 1:
            reason = f"must be {scopes[0].value}: kind {kind} has no other scope; got {raw!r}"
        else:
            reason = f"must be one of {', '.join(s.value for s in scopes)}; got {raw!r}"
        raise RuleConfigError("scope", reason)
    return Scope(raw), read_lifecycle(options)


def amount(
    kind: str, options: Mapping[str, object], field: str, *, positive: bool = False
) -> Decimal:
    """A required number option as an exact Decimal; ``positive`` refuses zero and below."""
    if field not in options:
        raise RuleConfigError(field, f"required for kind {kind}")
    raw = options[field]
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise RuleConfigError(field, f"must be a number; got {raw!r}")
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise RuleConfigError(field, f"must be a number; got {raw!r}") from None
    if positive and not (value.is_finite() and value > 0):
        raise RuleConfigError(field, f"must be a positive amount; got {raw}")
    if not value.is_finite():
        raise RuleConfigError(field, f"must be a finite number; got {raw}")
    return value


@dataclass(frozen=True, slots=True)
class FiringCondition:
    """A condition firing now: its rule, the account, the position (None for the account as
    a whole), since when it fires, and the rule's kind."""

    rule: str
    severity: Severity
    account: str
    key: PositionKey | None
    symbol: str | None
    since: datetime
    kind: str


def firing_conditions(
    rules: Sequence[Rule], account: str, states: Mapping[str, Any], snapshot: Snapshot | None
) -> list[FiringCondition]:
    """The conditions firing in one account's rule ``states``, rules in file order; the
    account's last ``snapshot`` names each position's symbol."""
    positions = snapshot.positions if snapshot is not None else {}
    firing = []
    for rule in rules:
        if not isinstance(rule, ConditionRule):
            continue
        state: ConditionState = states.get(rule.name) or {}
        for key, tracked in state.items():
            since = tracked.condition.firing_since
            if since is not None:
                position = None if key is None else positions.get(key)
                symbol = None if position is None else position.symbol
                firing.append(
                    FiringCondition(
                        rule.name, rule.severity, account, key, symbol, since, rule.kind
                    )
                )
    return firing


def firing_counts(rules: Sequence[Rule], states: Mapping[str, Any]) -> dict[str, int]:
    """How many subjects each condition rule has firing in one account's rule ``states``,
    naming every condition rule (0 when none fires)."""
    counts = {}
    for rule in rules:
        if isinstance(rule, ConditionRule):
            state: ConditionState = states.get(rule.name) or {}
            counts[rule.name] = sum(
                1 for tracked in state.values() if tracked.condition.firing_since is not None
            )
    return counts
