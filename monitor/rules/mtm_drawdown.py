"""``mtm_drawdown``: MTM has fallen ``threshold`` or more below the day's peak.

MTM = realized + unrealized P&L, per position (``scope: position``) or summed over the account's
positions that pass the filters (``scope: account``). The peak is the highest MTM seen since the
trading day began; the day's first good poll with a known MTM sets it. The condition is active
when peak - MTM >= threshold and clear when the drawdown is below half the threshold (a new
peak makes it 0); in between it is neither, so with the default lifecycle the rule fires once
and re-arms only below half the threshold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from monitor.model import DetailValue, Severity, format_money
from monitor.rules.base import PositionFilter
from monitor.rules.conditions import ConditionRule, amount, read_common
from monitor.rules.lifecycle import Outcome

KIND = "mtm_drawdown"


@dataclass(frozen=True, slots=True)
class MtmDrawdown(ConditionRule):
    """Alert when MTM falls ``threshold`` below the day's peak."""

    kind: ClassVar[str] = KIND
    title: ClassVar[str] = "MTM drawdown"

    threshold: Decimal

    def assess(self, mtm: Decimal, peak: Decimal | None) -> tuple[Outcome, Decimal | None]:
        """Active at ``threshold`` below the peak, clear below half of it; the peak rises."""
        if peak is None or mtm > peak:
            return Outcome.CLEAR, mtm
        drawdown = peak - mtm
        if drawdown >= self.threshold:
            return Outcome.ACTIVE, peak
        if drawdown * 2 < self.threshold:
            return Outcome.CLEAR, peak
        return Outcome.NEITHER, peak

    def figures(self, mtm: Decimal, peak: Decimal | None) -> tuple[str, dict[str, DetailValue]]:
        """How far below which peak, the MTM and the threshold."""
        peak = mtm if peak is None else peak  # assess sets the peak before any alert
        drawdown = peak - mtm
        text = (
            f"{format_money(drawdown)} below the day's peak {format_money(peak)} "
            f"(MTM {format_money(mtm)}, threshold {format_money(self.threshold)})"
        )
        return text, {"mtm": mtm, "peak": peak, "drawdown": drawdown}


def build(
    name: str, severity: Severity, filter: PositionFilter, options: Mapping[str, object]
) -> MtmDrawdown:
    """Make the rule from its rules.yaml entry: ``threshold`` (required, > 0), ``scope`` and
    the lifecycle options."""
    scope, lifecycle = read_common(KIND, options, frozenset({"threshold"}))
    threshold = amount(KIND, options, "threshold", positive=True)
    return MtmDrawdown(name, severity, filter, scope, lifecycle, threshold)
