"""``new_position``: a key that was flat or absent is open now, long or short; never on the
baseline."""

from __future__ import annotations

from decimal import Decimal

import pytest

from monitor.model import Alert, Severity
from monitor.rules.base import Globs, PositionFilter, RuleConfigError
from monitor.rules.new_position import NewPosition
from monitor.rules.registry import RULE_KINDS
from tests.snapshots import T0, change, key, poll, pos, snap

RULE = NewPosition("opened", Severity.INFO, PositionFilter())
SYMBOL = "BANKNIFTY21JULFUT"


def opened_alert(before: int, after: int, side: str) -> Alert:
    """The alert RULE raises for token 53179 going from ``before`` to ``after``."""
    return Alert(
        rule="opened",
        kind="new_position",
        severity=Severity.INFO,
        account="kotak-main",
        key=key("53179"),
        symbol=SYMBOL,
        at=T0,
        message=f"New {side} position {SYMBOL} (nse_fo NRML): net qty {before} -> {after}",
        details={"net_qty_before": Decimal(before), "net_qty": Decimal(after)},
    )


def run(before: int | None, after: int | None, **flags: bool) -> tuple[object, list[Alert]]:
    """Evaluate RULE on one change of token 53179 from ``before`` to ``after``."""
    old = None if before is None else pos("53179", before, symbol=SYMBOL)
    new = None if after is None else pos("53179", after, symbol=SYMBOL)
    current = snap(*([new] if new is not None else []))
    return RULE.evaluate(None, poll(current, change(old, new), **flags))


@pytest.mark.parametrize(
    ("before", "after", "side"),
    [(None, 25, "long"), (None, -25, "short"), (0, 50, "long"), (0, -50, "short")],
)
def test_absent_or_flat_to_open_fires(before: int | None, after: int, side: str) -> None:
    """A new row or a flat row that is now long or short raises one alert, before counted 0."""
    assert run(before, after) == (None, [opened_alert(before or 0, after, side)])


@pytest.mark.parametrize(
    ("before", "after"),
    [(25, 50), (25, -25), (-25, 25), (-25, -50), (25, 0), (25, None), (0, 0), (None, 0)],
)
def test_no_alert_unless_leaving_zero(before: int | None, after: int | None) -> None:
    """Adding, reducing, flipping, closing, vanishing or a flat new row raise nothing."""
    assert run(before, after) == (None, [])


def test_silent_on_baseline() -> None:
    """The first poll of an account raises nothing even for open rows."""
    assert run(None, 25, baseline=True) == (None, [])


def test_fires_on_the_first_poll_of_a_new_day() -> None:
    """A position opened while nobody polled is reported on the new day's first poll."""
    assert run(0, 25, new_day=True) == (None, [opened_alert(0, 25, "long")])


def test_filters_apply_to_the_new_row() -> None:
    """A symbol filter keeps out positions it does not match."""
    rule = NewPosition("opened", Severity.INFO, PositionFilter(symbols=Globs.of(["NIFTY*"])))
    new = pos("53179", 25, symbol=SYMBOL)
    assert rule.evaluate(None, poll(snap(new), change(None, new))) == (None, [])


def test_one_alert_per_new_position_in_change_order() -> None:
    """Several openings in one poll give one alert each, in the order of the changes."""
    a0, a1 = pos("a", 0), pos("a", 3)
    b1 = pos("b", -2)
    c0, c1 = pos("c", 4), pos("c", 5)
    _, alerts = RULE.evaluate(
        None, poll(snap(b1, a1, c1), change(None, b1), change(a0, a1), change(c0, c1))
    )
    assert [(a.key.token, a.details["net_qty"]) for a in alerts if a.key] == [
        ("b", Decimal(-2)),
        ("a", Decimal(3)),
    ]


def test_registered_and_takes_no_options() -> None:
    """The registry builds it; an option of another kind is refused naming the field."""
    flt = PositionFilter()
    assert RULE_KINDS["new_position"]("o", Severity.INFO, flt, {}) == NewPosition(
        "o", Severity.INFO, flt
    )
    with pytest.raises(RuleConfigError) as info:
        RULE_KINDS["new_position"]("o", Severity.INFO, flt, {"min_change": 5})
    assert str(info.value) == "min_change: unknown field for kind new_position"
