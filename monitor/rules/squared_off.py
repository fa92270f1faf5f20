"""``squared_off``: a key that was open is flat now, or its row vanished, on the same trading day.

Nothing fires on the silent baseline. On the first poll of a new trading day a row that vanished
is dropped silently (brokers clear day positions at the day boundary), while an open position
that reads zero is still a square-off: it happened while nobody was polling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from monitor.model import ZERO, Alert, Change, ChangeKind, DetailValue, format_qty
from monitor.rules.base import Poll, describe, position_alert
from monitor.rules.events import EventRule


@dataclass(frozen=True, slots=True)
class SquaredOff(EventRule):
    """Alert when an open position is closed."""

    kind: ClassVar[str] = "squared_off"

    def alert_for(self, change: Change, poll: Poll) -> Alert | None:
        """An alert when an open position went to zero or disappeared."""
        before = change.before
        if before is None or before.net_qty == ZERO:
            return None
        if change.after is not None and change.after.net_qty != ZERO:
            return None
        removed = change.kind is ChangeKind.REMOVED
        if (removed and poll.new_day) or not self.filter.allows(before):
            return None
        tail = "position no longer reported" if removed else "net qty 0"
        message = f"Squared off {describe(before)}: was {format_qty(before.net_qty)}, {tail}"
        details: dict[str, DetailValue] = {
            "net_qty_before": before.net_qty,
            "net_qty": ZERO,
            "row_removed": removed,
        }
        return position_alert(self, poll, change.after or before, message, details)
