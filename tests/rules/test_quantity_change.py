"""``quantity_change``: net quantity moved by at least ``min_change``, an absent or removed row
counting as 0; never on the baseline."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from monitor.config import ConfigError, load
from monitor.model import Alert, Severity
from monitor.rules.base import Globs, PositionFilter, RuleConfigError
from monitor.rules.quantity_change import QuantityChange
from monitor.rules.registry import RULE_KINDS
from tests.snapshots import T0, change, key, poll, pos, snap

RULE = QuantityChange("size", Severity.INFO, PositionFilter())
SYMBOL = "BANKNIFTY21JULFUT"


def size_alert(before: int, after: int, tail: str = "", rule: str = "size") -> Alert:
    """The alert a quantity_change rule raises for token 53179 going ``before`` -> ``after``."""
    moved = after - before
    return Alert(
        rule=rule,
        kind="quantity_change",
        severity=Severity.INFO,
        account="kotak-main",
        key=key("53179"),
        symbol=SYMBOL,
        at=T0,
        message=f"Quantity change {SYMBOL} (nse_fo NRML): net qty {before} -> {after} "
        f"({'+' if moved > 0 else ''}{moved}){tail}",
        details={
            "net_qty_before": Decimal(before),
            "net_qty": Decimal(after),
            "change": Decimal(moved),
        },
    )


def run(
    before: int | None,
    after: int | None,
    rule: QuantityChange = RULE,
    **flags: bool,
) -> tuple[object, list[Alert]]:
    """Evaluate ``rule`` on one change of token 53179 from ``before`` to ``after``."""
    old = None if before is None else pos("53179", before, symbol=SYMBOL)
    new = None if after is None else pos("53179", after, symbol=SYMBOL)
    current = snap(*([new] if new is not None else []))
    return rule.evaluate(None, poll(current, change(old, new), **flags))


@pytest.mark.parametrize(
    ("before", "after"),
    [(25, 50), (50, 25), (25, -25), (-25, -75), (0, 25), (25, 0), (-1, 0)],
)
def test_any_change_fires_by_default(before: int, after: int) -> None:
    """Without min_change every move of the net quantity is reported with its signed change."""
    assert run(before, after) == (None, [size_alert(before, after)])


def test_absent_row_counts_as_zero() -> None:
    """A new row is a change from 0."""
    assert run(None, -25) == (None, [size_alert(0, -25)])


def test_removed_row_counts_as_zero() -> None:
    """A removed row (confirmed missing) is a change to 0, and the message says it vanished."""
    tail = ", position no longer reported"
    assert run(25, None) == (None, [size_alert(25, 0, tail)])


def test_removed_row_on_a_new_day_is_dropped_silently() -> None:
    """Brokers clear day positions at the day boundary: that is not a change."""
    assert run(25, None, new_day=True) == (None, [])


def test_new_day_still_compares_rows_present() -> None:
    """A quantity that moved overnight is reported on the new day's first poll."""
    assert run(25, 75, new_day=True) == (None, [size_alert(25, 75)])


@pytest.mark.parametrize(("before", "after"), [(25, 25), (None, 0), (0, None), (0, 0)])
def test_no_alert_when_the_quantity_holds(before: int | None, after: int | None) -> None:
    """Rows that keep their quantity (or stay flat, or appear flat) raise nothing."""
    assert run(before, after) == (None, [])


def test_other_fields_moving_is_not_a_quantity_change() -> None:
    """A row whose MTM moves is a CHANGED row, not a quantity change."""
    old, new = pos("1", 25, mtm=10), pos("1", 25, mtm=-10)
    assert RULE.evaluate(None, poll(snap(new), change(old, new))) == (None, [])


def test_silent_on_baseline() -> None:
    """The first poll of an account raises nothing."""
    assert run(None, 25, baseline=True) == (None, [])


@pytest.mark.parametrize(
    ("before", "after", "fires"),
    [(0, 49, False), (0, 50, True), (100, 51, False), (100, 50, True), (25, -25, True)],
)
def test_min_change_is_inclusive_in_both_directions(before: int, after: int, fires: bool) -> None:
    """|change| >= min_change fires, whether the position grows or shrinks."""
    rule = QuantityChange("size", Severity.INFO, PositionFilter(), min_change=Decimal(50))
    expected = [size_alert(before, after)] if fires else []
    assert run(before, after, rule) == (None, expected)


def test_filters_apply_to_the_row_before_removal() -> None:
    """A removed row is filtered on its last reported figures."""
    rule = QuantityChange("size", Severity.INFO, PositionFilter(segments=Globs.of(["bse_*"])))
    assert run(25, None, rule) == (None, [])
    assert run(25, 50, rule) == (None, [])


def test_fractional_quantities() -> None:
    """Crypto balances move by fractions; the change prints and serialises exactly."""
    old, new = pos("1", "0.5"), pos("1", "0.25")
    _, [alert] = RULE.evaluate(None, poll(snap(new), change(old, new)))
    assert alert.message == "Quantity change SYM1 (nse_fo NRML): net qty 0.5 -> 0.25 (-0.25)"
    assert alert.to_json()["details"] == {"net_qty_before": 0.5, "net_qty": 0.25, "change": -0.25}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, None), (50, Decimal(50)), ("0.5", Decimal("0.5")), (1.5, Decimal("1.5"))],
)
def test_build_reads_min_change(raw: object, expected: Decimal | None) -> None:
    """min_change is optional; ints, decimal strings and floats become exact Decimals."""
    options = {} if raw is None else {"min_change": raw}
    rule = RULE_KINDS["quantity_change"]("size", Severity.INFO, PositionFilter(), options)
    assert rule == QuantityChange("size", Severity.INFO, PositionFilter(), expected)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"min_change": 0}, "min_change: must be a quantity above 0; got 0"),
        ({"min_change": -5}, "min_change: must be a quantity above 0; got -5"),
        ({"min_change": "NaN"}, "min_change: must be a quantity above 0; got NaN"),
        ({"min_change": "ten"}, "min_change: must be a quantity; got 'ten'"),
        ({"min_change": True}, "min_change: must be a quantity; got True"),
        ({"min_change": None}, "min_change: must be a quantity; got None"),
        ({"min_change": [5]}, "min_change: must be a quantity; got [5]"),
        ({"threshold": 5}, "threshold: unknown field for kind quantity_change"),
    ],
)
def test_build_errors_name_the_field(options: dict[str, object], message: str) -> None:
    """A bad option raises RuleConfigError naming the field and the reason."""
    with pytest.raises(RuleConfigError) as info:
        RULE_KINDS["quantity_change"]("size", Severity.INFO, PositionFilter(), options)
    assert str(info.value) == message


def test_check_names_file_rule_field_and_line(tmp_path: Path) -> None:
    """rules.yaml with a bad min_change gives one line with the file, rule, field and line."""
    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules:\n  - name: size\n    kind: quantity_change\n    min_change: -5\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.problems == [
        f"{path}: rule 'size': min_change: must be a quantity above 0; got -5 (line 4)"
    ]
