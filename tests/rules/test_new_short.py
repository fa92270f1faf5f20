"""``new_short``: a key that was flat, long or absent is short now; never on the baseline."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from monitor.model import Alert, Severity
from monitor.rules.base import PositionFilter
from monitor.rules.new_short import NewShort
from tests.snapshots import T0, change, key, poll, pos, snap

RULE = NewShort("fresh-short", Severity.WARNING, PositionFilter())
SYMBOL = "BANKNIFTY21JULFUT"


def short_alert(before: int, after: int) -> Alert:
    """The alert RULE raises for token 53179 going from ``before`` to ``after``."""
    return Alert(
        rule="fresh-short",
        kind="new_short",
        severity=Severity.WARNING,
        account="kotak-main",
        key=key("53179"),
        symbol=SYMBOL,
        at=T0,
        message=f"New short {SYMBOL} (nse_fo NRML): net qty {before} -> {after}",
        details={"net_qty_before": Decimal(before), "net_qty": Decimal(after)},
    )


def run(before: int | None, after: int | None, **flags: bool) -> tuple[object, list[Alert]]:
    """Evaluate RULE on one change of token 53179 from ``before`` to ``after``."""
    old = None if before is None else pos("53179", before, symbol=SYMBOL)
    new = None if after is None else pos("53179", after, symbol=SYMBOL)
    current = snap(*([new] if new is not None else []))
    return RULE.evaluate(None, poll(current, change(old, new), **flags))


def test_flat_to_short_fires() -> None:
    """0 -> -25 raises one alert with the before and after quantities."""
    assert run(0, -25) == (None, [short_alert(0, -25)])


def test_absent_to_short_fires() -> None:
    """A new row that is short (absent -> -25) fires with net_qty_before 0."""
    assert run(None, -25) == (None, [short_alert(0, -25)])


def test_long_to_short_flip_fires() -> None:
    """A flip from +25 to -25 counts as a new short."""
    assert run(25, -25) == (None, [short_alert(25, -25)])


@pytest.mark.parametrize(
    ("before", "after"),
    [(-25, -50), (-50, -25), (0, 25), (25, 0), (-25, 0), (-25, 25), (-25, None), (None, 25)],
)
def test_no_alert_unless_crossing_below_zero(before: int | None, after: int | None) -> None:
    """Adding to a short, reducing it, going long, flat or vanishing raises nothing."""
    assert run(before, after) == (None, [])


def test_quantity_change_without_crossing_is_silent_even_if_other_fields_move() -> None:
    """A short whose MTM moves is a CHANGED row but not a new short."""
    old, new = pos("1", -25, mtm=10), pos("1", -25, mtm=-10)
    assert RULE.evaluate(None, poll(snap(new), change(old, new))) == (None, [])


def test_silent_on_baseline() -> None:
    """The first poll of an account raises nothing even for short rows."""
    assert run(None, -25, baseline=True) == (None, [])


def test_fires_on_the_first_poll_of_a_new_day() -> None:
    """Only the baseline is silent: a short that appears on a new day's first poll is reported."""
    assert run(None, -25, new_day=True) == (None, [short_alert(0, -25)])


def test_one_alert_per_new_short_in_change_order() -> None:
    """Several new shorts in one poll give one alert each, in the order of the changes."""
    a0, a1 = pos("a", 0), pos("a", -1)
    b1 = pos("b", -2)
    c0, c1 = pos("c", -3), pos("c", -4)
    _, alerts = RULE.evaluate(
        None, poll(snap(b1, a1, c1), change(None, b1), change(a0, a1), change(c0, c1))
    )
    assert [(a.key.token, a.details["net_qty"]) for a in alerts if a.key] == [
        ("b", Decimal(-2)),
        ("a", Decimal(-1)),
    ]


def test_alert_json_contract() -> None:
    """to_json() has exactly the alert JSON fields in order (README "Replay files and alert
    JSON"), details as JSON ints."""
    _, [alert] = run(0, -25)
    data = alert.to_json()
    assert data == {
        "rule": "fresh-short",
        "kind": "new_short",
        "severity": "warning",
        "state": "firing",
        "account": "kotak-main",
        "exchange_segment": "nse_fo",
        "token": "53179",
        "product": "NRML",
        "symbol": "BANKNIFTY21JULFUT",
        "at": "2026-11-23T09:20:05+05:30",
        "message": "New short BANKNIFTY21JULFUT (nse_fo NRML): net qty 0 -> -25",
        "details": {"net_qty_before": 0, "net_qty": -25},
    }
    assert list(data) == [
        "rule", "kind", "severity", "state", "account", "exchange_segment", "token", "product",
        "symbol", "at", "message", "details",
    ]  # fmt: skip
    details = data["details"]
    assert isinstance(details, dict)
    assert type(details["net_qty_before"]) is int
    assert type(details["net_qty"]) is int
    assert json.loads(alert.to_jsonl()) == data
    assert '"details": {"net_qty_before": 0, "net_qty": -25}' in alert.to_jsonl()


def test_decimal_quantities_render_as_json_ints_or_floats() -> None:
    """-25.00 renders as the JSON int -25 and a fractional -0.5 as a float."""
    old, new = pos("1", "0.00"), pos("1", "-25.00")
    _, [alert] = RULE.evaluate(None, poll(snap(new), change(old, new)))
    assert alert.to_json()["details"] == {"net_qty_before": 0, "net_qty": -25}
    assert alert.message == "New short SYM1 (nse_fo NRML): net qty 0 -> -25"
    frac = pos("1", "-0.5")
    _, [alert] = RULE.evaluate(None, poll(snap(frac), change(old, frac)))
    assert alert.to_jsonl().endswith('"details": {"net_qty_before": 0, "net_qty": -0.5}}')
    assert alert.message == "New short SYM1 (nse_fo NRML): net qty 0 -> -0.5"


def test_stateless() -> None:
    """The rule keeps no state: dump and load both give None, and no entries are kept."""
    assert RULE.dump_state(None) is None
    assert RULE.load_state("kotak-main", None) is None
    assert RULE.dump_entries(None, None) is None
