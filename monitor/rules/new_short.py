"""``new_short``: a key that was flat, long or absent in the previous good snapshot is short now.

A flip from long to short counts. Nothing fires on the silent baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from monitor.model import ZERO, Alert, Change, format_qty
from monitor.rules.base import Poll, describe, position_alert
from monitor.rules.events import EventRule


@dataclass(frozen=True, slots=True)
class NewShort(EventRule):
    """Alert when a position turns short."""

    kind: ClassVar[str] = "new_short"

    def alert_for(self, change: Change, poll: Poll) -> Alert | None:
        """An alert when the change's net quantity crossed below zero."""
        after = change.after
        if after is None or after.net_qty >= ZERO:
            return None
        before_qty = change.before.net_qty if change.before is not None else ZERO
        if before_qty < ZERO or not self.filter.allows(after):
            return None
        message = (
            f"New short {describe(after)}: net qty {format_qty(before_qty)} -> "
            f"{format_qty(after.net_qty)}"
        )
        details = {"net_qty_before": before_qty, "net_qty": after.net_qty}
        return position_alert(self, poll, after, message, details)
