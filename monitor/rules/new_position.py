"""``new_position``: a key that was flat or absent in the previous good snapshot is open now.

Long or short alike. Nothing fires on the silent baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from monitor.model import ZERO, Alert, Change, format_qty
from monitor.rules.base import Poll, describe, position_alert
from monitor.rules.events import EventRule


@dataclass(frozen=True, slots=True)
class NewPosition(EventRule):
    """Alert when a position is opened."""

    kind: ClassVar[str] = "new_position"

    def alert_for(self, change: Change, poll: Poll) -> Alert | None:
        """An alert when the change's net quantity left zero."""
        after = change.after
        if after is None or after.net_qty == ZERO:
            return None
        before_qty = change.before.net_qty if change.before is not None else ZERO
        if before_qty != ZERO or not self.filter.allows(after):
            return None
        side = "long" if after.net_qty > ZERO else "short"
        message = (
            f"New {side} position {describe(after)}: net qty {format_qty(before_qty)} -> "
            f"{format_qty(after.net_qty)}"
        )
        details = {"net_qty_before": before_qty, "net_qty": after.net_qty}
        return position_alert(self, poll, after, message, details)
