"""The only place a rule ``kind`` string from rules.yaml becomes a rule type."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from monitor.model import Severity
from monitor.rules import mtm_above, mtm_below, mtm_drawdown, position_limit
from monitor.rules.base import PositionFilter, Rule
from monitor.rules.new_position import NewPosition
from monitor.rules.new_short import NewShort
from monitor.rules.quantity_change import QuantityChange
from monitor.rules.squared_off import SquaredOff


class Builder(Protocol):
    """Makes a rule from its common fields and its kind-specific options."""

    def __call__(
        self, name: str, severity: Severity, filter: PositionFilter, options: Mapping[str, object]
    ) -> Rule: ...


RULE_KINDS: Mapping[str, Builder] = {
    mtm_drawdown.KIND: mtm_drawdown.build,
    mtm_below.KIND: mtm_below.build,
    mtm_above.KIND: mtm_above.build,
    position_limit.KIND: position_limit.build,
    NewShort.kind: NewShort.build,
    SquaredOff.kind: SquaredOff.build,
    NewPosition.kind: NewPosition.build,
    QuantityChange.kind: QuantityChange.build,
}

CONDITION_KINDS = frozenset(
    {mtm_drawdown.KIND, mtm_below.KIND, mtm_above.KIND, position_limit.KIND}
)
"""The kinds whose alerts say a condition holds, until a resolved alert says it ended; every
other kind's alert reports one event."""
