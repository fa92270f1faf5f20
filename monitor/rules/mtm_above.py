"""``mtm_above``: MTM is at or above ``threshold`` (any sign): a profit target.

Per position (``scope: position``) or summed over the account's positions that pass the
filters (``scope: account``, the default). Clear whenever MTM is below the threshold.
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

KIND = "mtm_above"


@dataclass(frozen=True, slots=True)
class MtmAbove(ConditionRule):
    """Alert when MTM reaches ``threshold`` from below."""

    kind: ClassVar[str] = KIND
    title: ClassVar[str] = "MTM at or above the target"

    threshold: Decimal

    def assess(self, mtm: Decimal, peak: Decimal | None) -> tuple[Outcome, Decimal | None]:
        """Active when MTM >= threshold, else clear."""
        return (Outcome.ACTIVE if mtm >= self.threshold else Outcome.CLEAR), None

    def figures(self, mtm: Decimal, peak: Decimal | None) -> tuple[str, dict[str, DetailValue]]:
        """The MTM and the threshold."""
        text = f"MTM {format_money(mtm)}, target {format_money(self.threshold)}"
        return text, {"mtm": mtm, "threshold": self.threshold}


def build(
    name: str, severity: Severity, filter: PositionFilter, options: Mapping[str, object]
) -> MtmAbove:
    """Make the rule from its rules.yaml entry: ``threshold`` (required), ``scope`` and the
    lifecycle options."""
    scope, lifecycle = read_common(KIND, options, frozenset({"threshold"}))
    return MtmAbove(name, severity, filter, scope, lifecycle, amount(KIND, options, "threshold"))
