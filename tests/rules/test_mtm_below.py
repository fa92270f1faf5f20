"""``mtm_below``: active at or below the threshold, any sign; its options."""

from __future__ import annotations

from decimal import Decimal

import pytest

from monitor.model import Severity
from monitor.rules.base import Globs, PositionFilter, RuleConfigError
from monitor.rules.conditions import Scope
from monitor.rules.lifecycle import Lifecycle, Outcome
from monitor.rules.mtm_below import MtmBelow, build
from tests.snapshots import poll, pos, snap


def below(threshold: int | str) -> MtmBelow:
    """An account-scope rule with default options."""
    return build("floor", Severity.WARNING, PositionFilter(), {"threshold": threshold})


@pytest.mark.parametrize(
    ("threshold", "mtm", "outcome"),
    [
        (-50000, "-50000", Outcome.ACTIVE), (-50000, "-50000.01", Outcome.ACTIVE),
        (-50000, "-49999.99", Outcome.CLEAR), (0, "0", Outcome.ACTIVE),
        (1000, "999", Outcome.ACTIVE), (1000, "1000.01", Outcome.CLEAR),
    ],
)  # fmt: skip
def test_active_at_or_below_the_threshold(threshold: int, mtm: str, outcome: Outcome) -> None:
    """MTM <= threshold is active (equality included), anything above is clear; any sign."""
    assert below(threshold).assess(Decimal(mtm), None) == (outcome, None)


def test_fires_on_the_account_sum() -> None:
    """Rows summing to the limit fire for the account, with mtm and threshold details."""
    _, [alert] = below(-100).evaluate(None, poll(snap(pos("1", 1, mtm=-60), pos("2", 1, mtm=-40))))
    assert (alert.key, alert.details) == (None, {"mtm": Decimal(-100), "threshold": Decimal(-100)})


def test_build_reads_threshold_scope_and_lifecycle() -> None:
    """A negative threshold is fine; scope position is accepted."""
    options = {"threshold": "-50000.50", "scope": "position", "send_resolved": True}
    assert build("floor", Severity.CRITICAL, PositionFilter(), options) == MtmBelow(
        "floor", Severity.CRITICAL, PositionFilter(), Scope.POSITION,
        Lifecycle(send_resolved=True), Decimal("-50000.50"),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "threshold: required for kind mtm_below"),
        ({"threshold": "lots"}, "threshold: must be a number; got 'lots'"),
        ({"threshold": True}, "threshold: must be a number; got True"),
        ({"threshold": "-inf"}, "threshold: must be a finite number; got -inf"),
        ({"threshold": 1, "scope": "book"}, "scope: must be one of account, position; got 'book'"),
        ({"threshold": 1, "max_quantity": 5}, "max_quantity: unknown field for kind mtm_below"),
    ],
)
def test_build_errors_name_the_field(options: dict[str, object], message: str) -> None:
    """Each bad option is one RuleConfigError naming its field."""
    with pytest.raises(RuleConfigError, match=f"^{message}$"):
        build("floor", Severity.WARNING, PositionFilter(), options)


def test_rules_on_one_poll_share_a_sum_only_over_the_same_rows() -> None:
    """Two unfiltered account rules read one sum of the poll; a rule filtered to the cash
    segment sums its own rows, not the sum the others left on the poll."""
    one = poll(snap(pos("1", 1, mtm=-60), pos("2", 1, mtm=-40, segment="nse_cm")))
    cash = build(
        "cash", Severity.WARNING, PositionFilter(segments=Globs.of(["nse_cm"])), {"threshold": -50}
    )
    _, fired = below(-100).evaluate(None, one)
    _, also = build("again", Severity.INFO, PositionFilter(), {"threshold": -100}).evaluate(
        None, one
    )
    _, none = cash.evaluate(None, one)
    assert [a.details["mtm"] for a in fired + also] == [Decimal(-100), Decimal(-100)]
    assert none == []  # -40 in cash alone is above -50
    assert len(one.sums) == 2  # one sum for both unfiltered rules, one for the cash rule
