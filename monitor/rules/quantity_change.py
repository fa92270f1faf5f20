"""``quantity_change``: a key's net quantity moved by at least ``min_change`` between two good
snapshots.

An absent row counts as net quantity 0, so opening and closing are changes too; a row removed
(missing from two good polls of the same day) counts at the poll that confirmed it. On the
first poll of a new trading day a row that vanished is dropped silently, as for
``squared_off``. Nothing fires on the silent baseline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from monitor.model import ZERO, Alert, Change, ChangeKind, format_qty
from monitor.rules.base import Poll, RuleConfigError, describe, position_alert
from monitor.rules.events import EventRule


@dataclass(frozen=True, slots=True)
class QuantityChange(EventRule):
    """Alert when a position's net quantity moves by ``min_change`` or more."""

    kind: ClassVar[str] = "quantity_change"
    option_fields: ClassVar[tuple[str, ...]] = ("min_change",)

    min_change: Decimal | None = None  # None: any change

    @classmethod
    def read_options(cls, options: Mapping[str, object]) -> dict[str, Any]:
        """``min_change``: a quantity > 0, optional."""
        if "min_change" not in options:
            return {}
        raw = options["min_change"]
        try:
            if isinstance(raw, bool) or not isinstance(raw, int | float | str):
                raise InvalidOperation
            value = Decimal(str(raw))
        except InvalidOperation:
            raise RuleConfigError("min_change", f"must be a quantity; got {raw!r}") from None
        if not value.is_finite() or value <= ZERO:
            raise RuleConfigError("min_change", f"must be a quantity above 0; got {raw}")
        return {"min_change": value}

    def alert_for(self, change: Change, poll: Poll) -> Alert | None:
        """An alert when the net quantity moved by at least ``min_change``."""
        removed = change.kind is ChangeKind.REMOVED
        if removed and poll.new_day:
            return None
        before_qty = change.before.net_qty if change.before is not None else ZERO
        after_qty = change.after.net_qty if change.after is not None else ZERO
        moved = after_qty - before_qty
        if moved == ZERO or (self.min_change is not None and abs(moved) < self.min_change):
            return None
        position = change.after or change.before
        if position is None or not self.filter.allows(position):
            return None
        sign = "+" if moved > ZERO else ""
        tail = ", position no longer reported" if removed else ""
        message = (
            f"Quantity change {describe(position)}: net qty {format_qty(before_qty)} -> "
            f"{format_qty(after_qty)} ({sign}{format_qty(moved)}){tail}"
        )
        details = {"net_qty_before": before_qty, "net_qty": after_qty, "change": moved}
        return position_alert(self, poll, position, message, details)
