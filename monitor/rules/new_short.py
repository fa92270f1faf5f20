"""``new_short``: a key that was flat, long or absent in the previous good snapshot is short now.

A flip from long to short counts. Nothing fires on the silent baseline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from monitor.model import ZERO, Alert, Severity, format_qty
from monitor.rules.base import (
    Poll,
    PositionFilter,
    StatelessRule,
    describe,
    position_alert,
    reject_options,
)

KIND = "new_short"


@dataclass(frozen=True, slots=True)
class NewShort(StatelessRule):
    """Alert when a position turns short."""

    @property
    def kind(self) -> str:
        """The rule kind string used in rules.yaml and alerts."""
        return KIND

    def evaluate(self, state: None, poll: Poll) -> tuple[None, list[Alert]]:
        """Alerts for every change whose net quantity crossed below zero."""
        if poll.baseline:
            return None, []
        alerts = []
        for change in poll.changes:
            after = change.after
            if after is None or after.net_qty >= ZERO:
                continue
            before_qty = change.before.net_qty if change.before is not None else ZERO
            if before_qty < ZERO or not self.filter.allows(after):
                continue
            message = (
                f"New short {describe(after)}: net qty {format_qty(before_qty)} -> "
                f"{format_qty(after.net_qty)}"
            )
            details = {"net_qty_before": before_qty, "net_qty": after.net_qty}
            alerts.append(position_alert(self, poll, after, message, details))
        return None, alerts


def build(
    name: str, severity: Severity, filter: PositionFilter, options: Mapping[str, object]
) -> NewShort:
    """Make the rule from its rules.yaml entry; it takes no options of its own."""
    reject_options(KIND, options)
    return NewShort(name, severity, filter)
