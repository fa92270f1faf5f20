"""``squared_off``: a key that was open is flat now, or its row vanished, on the same trading day.

Nothing fires on the silent baseline. On the first poll of a new trading day a row that vanished
is dropped silently (brokers clear day positions at the day boundary), while an open position
that reads zero is still a square-off: it happened while nobody was polling.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from monitor.model import ZERO, Alert, ChangeKind, DetailValue, Severity, format_qty
from monitor.rules.base import (
    Poll,
    PositionFilter,
    StatelessRule,
    describe,
    position_alert,
    reject_options,
)

KIND = "squared_off"


@dataclass(frozen=True, slots=True)
class SquaredOff(StatelessRule):
    """Alert when an open position is closed."""

    @property
    def kind(self) -> str:
        """The rule kind string used in rules.yaml and alerts."""
        return KIND

    def evaluate(self, state: None, poll: Poll) -> tuple[None, list[Alert]]:
        """Alerts for every open position that went to zero or disappeared."""
        if poll.baseline:
            return None, []
        alerts = []
        for change in poll.changes:
            before = change.before
            if before is None or before.net_qty == ZERO:
                continue
            if change.after is not None and change.after.net_qty != ZERO:
                continue
            removed = change.kind is ChangeKind.REMOVED
            if removed and poll.new_day:
                continue
            if not self.filter.allows(before):
                continue
            tail = "position no longer reported" if removed else "net qty 0"
            message = f"Squared off {describe(before)}: was {format_qty(before.net_qty)}, {tail}"
            details: dict[str, DetailValue] = {
                "net_qty_before": before.net_qty,
                "net_qty": ZERO,
                "row_removed": removed,
            }
            alerts.append(position_alert(self, poll, change.after or before, message, details))
        return None, alerts


def build(
    name: str, severity: Severity, filter: PositionFilter, options: Mapping[str, object]
) -> SquaredOff:
    """Make the rule from its rules.yaml entry; it takes no options of its own."""
    reject_options(KIND, options)
    return SquaredOff(name, severity, filter)
