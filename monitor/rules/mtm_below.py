"""``mtm_below``: MTM is at or below ``threshold`` (any sign): a daily loss limit at -50000.

Per position (``scope: position``) or summed over the account's positions that pass the
filters (``scope: account``, the default). Clear whenever MTM is above the threshold.
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

KIND = "mtm_below"


@dataclass(frozen=True, slots=True)
class MtmBelow(ConditionRule):
    """Alert when MTM reaches ``threshold`` from above."""

    kind: ClassVar[str] = KIND
    title: ClassVar[str] = "MTM at or below the limit"

    threshold: Decimal

    def assess(self, mtm: Decimal, peak: Decimal | None) -> tuple[Outcome, Decimal | None]:
        """Active when MTM <= threshold, else clear."""
        return (Outcome.ACTIVE if mtm <= self.threshold else Outcome.CLEAR), None

    def figures(self, mtm: Decimal, peak: Decimal | None) -> tuple[str, dict[str, DetailValue]]:
        """The MTM and the threshold."""
        text = f"MTM {format_money(mtm)}, limit {format_money(self.threshold)}"
        return text, {"mtm": mtm, "threshold": self.threshold}


def build(
    name: str, severity: Severity, filter: PositionFilter, options: Mapping[str, object]
) -> MtmBelow:
    """Make the rule from its rules.yaml entry: ``threshold`` (required), ``scope`` and the
    lifecycle options."""
    scope, lifecycle = read_common(KIND, options, frozenset({"threshold"}))
    return MtmBelow(name, severity, filter, scope, lifecycle, amount(KIND, options, "threshold"))
