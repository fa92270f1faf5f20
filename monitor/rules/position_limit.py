"""``position_limit``: a position's absolute net quantity is above ``max_quantity``.

Position scope only (an account has no one quantity). It needs no MTM, so a row without a
price is still evaluated. Clear whenever |net quantity| <= max_quantity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from monitor.model import DetailValue, Position, Severity, format_qty
from monitor.rules.base import PositionFilter
from monitor.rules.conditions import ConditionRule, Scope, amount, read_common
from monitor.rules.lifecycle import Outcome

KIND = "position_limit"


@dataclass(frozen=True, slots=True)
class PositionLimit(ConditionRule):
    """Alert when a position grows past ``max_quantity``, long or short."""

    kind: ClassVar[str] = KIND
    title: ClassVar[str] = "Position over the limit"

    max_quantity: Decimal

    def measure(self, position: Position) -> Decimal:
        """The row's net quantity, known whether or not it has a price."""
        return position.net_qty

    def assess(self, net_qty: Decimal, peak: Decimal | None) -> tuple[Outcome, Decimal | None]:
        """Active when |net quantity| > max_quantity, else clear."""
        return (Outcome.ACTIVE if abs(net_qty) > self.max_quantity else Outcome.CLEAR), None

    def figures(self, net_qty: Decimal, peak: Decimal | None) -> tuple[str, dict[str, DetailValue]]:
        """The net quantity and the limit."""
        text = f"net qty {format_qty(net_qty)}, limit {format_qty(self.max_quantity)}"
        return text, {"net_qty": net_qty, "max_quantity": self.max_quantity}


def build(
    name: str, severity: Severity, filter: PositionFilter, options: Mapping[str, object]
) -> PositionLimit:
    """Make the rule from its rules.yaml entry: ``max_quantity`` (required, > 0), ``scope``
    (position only) and the lifecycle options."""
    scope, lifecycle = read_common(KIND, options, frozenset({"max_quantity"}), (Scope.POSITION,))
    max_quantity = amount(KIND, options, "max_quantity", positive=True)
    return PositionLimit(name, severity, filter, scope, lifecycle, max_quantity)
