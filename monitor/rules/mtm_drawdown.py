"""``mtm_drawdown``: MTM has fallen ``threshold`` or more below the day's peak.

MTM = realized + unrealized P&L, per position (``scope: position``) or summed over the account's
positions that pass the filters (``scope: account``). The peak is the highest MTM seen since the
trading day began; the first good poll of the day sets it, and a position keeps its peak all
day, also through polls that miss it or lack its price. The rule fires once when
peak - MTM >= threshold, stays quiet while the drawdown stays at or above the threshold, and
re-arms when the drawdown falls below half the threshold or a new peak is set.

An account MTM is unknown when any counted position has no price: that poll is not evaluated.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import msgspec

from monitor.model import ZERO, Alert, PositionKey, Severity, Snapshot, format_money
from monitor.rules.base import Poll, PositionFilter, RuleConfigError, describe, position_alert

KIND = "mtm_drawdown"


class Scope(enum.StrEnum):
    ACCOUNT = "account"
    POSITION = "position"


class Peak(msgspec.Struct, frozen=True, gc=False):
    """The day's highest MTM for one scope, and whether the rule has fired since.

    One per position for ``scope: position``, compared every poll to find the states that
    changed: a Struct compares in C and, holding a Decimal and a bool, needs no tracking by the
    garbage collector.
    """

    peak: Decimal
    fired: bool


# Keyed by position key, or None for the whole account.
DrawdownState = dict[PositionKey | None, Peak]


@dataclass(frozen=True, slots=True)
class MtmDrawdown:
    """Alert when MTM falls ``threshold`` below the day's peak."""

    name: str
    severity: Severity
    filter: PositionFilter
    scope: Scope
    threshold: Decimal

    @property
    def kind(self) -> str:
        """The rule kind string used in rules.yaml and alerts."""
        return KIND

    def evaluate(
        self, state: DrawdownState | None, poll: Poll
    ) -> tuple[DrawdownState, list[Alert]]:
        """Advance every peak with this poll's MTM and alert on fresh breaches."""
        previous: DrawdownState = {} if state is None or poll.new_day else state
        if self.scope is Scope.ACCOUNT:
            return self._evaluate_account(previous, poll)
        return self._evaluate_positions(previous, poll)

    def _evaluate_account(
        self, previous: DrawdownState, poll: Poll
    ) -> tuple[DrawdownState, list[Alert]]:
        mtm = self.account_mtm(poll.snapshot)
        if mtm is None:
            return previous, []
        entry, fired = self._advance(previous.get(None), mtm)
        alerts = []
        if fired:
            snapshot = poll.snapshot
            drawdown = entry.peak - mtm
            alerts.append(
                Alert(
                    rule=self.name,
                    kind=KIND,
                    severity=self.severity,
                    account=snapshot.account,
                    key=None,
                    symbol=None,
                    at=snapshot.taken_at,
                    message=(
                        f"MTM drawdown on account {snapshot.account}: "
                        f"{self._figures(mtm, entry.peak, drawdown)}"
                    ),
                    details=self._details(mtm, entry.peak, drawdown),
                )
            )
        return {None: entry}, alerts

    def _evaluate_positions(
        self, previous: DrawdownState, poll: Poll
    ) -> tuple[DrawdownState, list[Alert]]:
        # Peaks last the whole trading day: a position missing from one poll, or polled
        # without a price, keeps its peak until it is seen again.
        state = dict(previous)
        alerts = []
        check_filter = self.filter.filters_positions
        for key, position in poll.snapshot.positions.items():
            if position.mtm is None or (check_filter and not self.filter.allows(position)):
                continue
            entry, fired = self._advance(previous.get(key), position.mtm)
            state[key] = entry
            if fired:
                drawdown = entry.peak - position.mtm
                message = (
                    f"MTM drawdown on {describe(position)}: "
                    f"{self._figures(position.mtm, entry.peak, drawdown)}"
                )
                details = self._details(position.mtm, entry.peak, drawdown)
                alerts.append(position_alert(self, poll, position, message, details))
        return state, alerts

    def account_mtm(self, snapshot: Snapshot) -> Decimal | None:
        """Sum of MTM over the positions this rule counts, or None if any is unknown."""
        check_filter = self.filter.filters_positions
        total = ZERO
        for position in snapshot.positions.values():
            if check_filter and not self.filter.allows(position):
                continue
            if position.mtm is None:
                return None
            total += position.mtm
        return total

    def _advance(self, entry: Peak | None, mtm: Decimal) -> tuple[Peak, bool]:
        """Next peak state for one scope, and whether this poll fires."""
        if entry is None or mtm > entry.peak:
            return Peak(mtm, False), False  # the day's first poll or a new peak: armed
        drawdown = entry.peak - mtm
        if not entry.fired and drawdown >= self.threshold:
            return Peak(entry.peak, True), True
        if entry.fired and drawdown * 2 < self.threshold:
            return Peak(entry.peak, False), False
        return entry, False

    def _figures(self, mtm: Decimal, peak: Decimal, drawdown: Decimal) -> str:
        return (
            f"{format_money(drawdown)} below the day's peak {format_money(peak)} "
            f"(MTM {format_money(mtm)}, threshold {format_money(self.threshold)})"
        )

    def _details(self, mtm: Decimal, peak: Decimal, drawdown: Decimal) -> dict[str, Decimal]:
        return {"mtm": mtm, "peak": peak, "drawdown": drawdown}

    def dump_state(self, state: DrawdownState) -> object:
        """Rows of [segment, token, product, peak, fired]; the account row has null keys."""
        return [_row(key, p) for key, p in state.items()]

    def dump_entries(
        self, before: DrawdownState | None, after: DrawdownState
    ) -> dict[str, object | None]:
        """The rows of ``dump_state`` whose peak changed since ``before``, by entry name (the
        row's key columns), and None for a scope no longer tracked; every row when ``before``
        is None. The store keeps them one by one: a poll writes only the peaks that moved."""
        entries: dict[str, object | None] = {}
        previous = before or {}
        kept = 0
        for key, peak in after.items():
            old = previous.get(key)
            if old is not None:
                kept += 1
            if old != peak or before is None:
                entries[_entry(key)] = _row(key, peak)
        if kept < len(previous):  # some scope of ``before`` is gone (a new trading day)
            for key in previous.keys() - after.keys():
                entries[_entry(key)] = None
        return entries

    def load_state(self, account: str, data: object) -> DrawdownState:
        """The inverse of ``dump_state`` for the account that owns the stored row."""
        if not isinstance(data, list):
            raise TypeError(f"stored {KIND} state must be a list, not {type(data).__name__}")
        state: DrawdownState = {}
        for segment, token, product, peak, fired in data:
            key = None if segment is None else PositionKey(account, segment, token, product)
            state[key] = Peak(Decimal(peak), bool(fired))
        return state


def _row(key: PositionKey | None, peak: Peak) -> list[object]:
    return [*(key[1:] if key is not None else (None, None, None)), str(peak.peak), peak.fired]


def _entry(key: PositionKey | None) -> str:
    return json.dumps(list(key[1:]) if key is not None else [None, None, None])


def build(
    name: str, severity: Severity, filter: PositionFilter, options: Mapping[str, object]
) -> MtmDrawdown:
    """Make the rule from its rules.yaml entry: ``threshold`` (required) and ``scope``."""
    unknown = set(options) - {"threshold", "scope"}
    if unknown:
        raise RuleConfigError(sorted(unknown)[0], f"unknown field for kind {KIND}")
    scope_raw = options.get("scope", Scope.ACCOUNT.value)
    if scope_raw not in {s.value for s in Scope}:
        raise RuleConfigError("scope", f"must be one of account, position; got {scope_raw!r}")
    if "threshold" not in options:
        raise RuleConfigError("threshold", f"required for kind {KIND}")
    raw = options["threshold"]
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise RuleConfigError("threshold", f"must be a number; got {raw!r}")
    try:
        threshold = Decimal(str(raw))
    except InvalidOperation:
        raise RuleConfigError("threshold", f"must be a number; got {raw!r}") from None
    if not threshold.is_finite() or threshold <= 0:
        raise RuleConfigError("threshold", f"must be a positive amount; got {raw}")
    return MtmDrawdown(name, severity, filter, Scope(scope_raw), threshold)
