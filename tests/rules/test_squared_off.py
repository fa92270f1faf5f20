"""``squared_off``: an open key went to zero or vanished on the same trading day."""

from __future__ import annotations

from decimal import Decimal

import pytest

from monitor.model import Alert, Severity
from monitor.rules.base import PositionFilter
from monitor.rules.squared_off import SquaredOff
from tests.snapshots import T0, change, key, poll, pos, snap

RULE = SquaredOff("closed", Severity.INFO, PositionFilter())
SYMBOL = "BANKNIFTY21JULFUT"


def run(before: int | None, after: int | None, **flags: bool) -> tuple[object, list[Alert]]:
    """Evaluate RULE on one change of token 53179 from ``before`` to ``after`` (None: absent)."""
    old = None if before is None else pos("53179", before, symbol=SYMBOL, mtm=120)
    new = None if after is None else pos("53179", after, symbol=SYMBOL, mtm=150)
    current = snap(*([new] if new is not None else []))
    return RULE.evaluate(None, poll(current, change(old, new), **flags))


def closed_alert(before: int, tail: str, removed: bool) -> Alert:
    """The alert RULE raises for token 53179 closing from ``before``."""
    return Alert(
        rule="closed",
        kind="squared_off",
        severity=Severity.INFO,
        account="kotak-main",
        key=key("53179"),
        symbol=SYMBOL,
        at=T0,
        message=f"Squared off {SYMBOL} (nse_fo NRML): was {before}, {tail}",
        details={"net_qty_before": Decimal(before), "net_qty": Decimal(0), "row_removed": removed},
    )


def test_long_to_zero_fires() -> None:
    """25 -> 0 raises one alert."""
    assert run(25, 0) == (None, [closed_alert(25, "net qty 0", removed=False)])


def test_short_to_zero_fires() -> None:
    """-25 -> 0 raises one alert."""
    assert run(-25, 0) == (None, [closed_alert(-25, "net qty 0", removed=False)])


def test_vanished_row_on_the_same_day_fires() -> None:
    """An open row missing from the next snapshot of the same day is a square-off."""
    assert run(25, None) == (
        None,
        [closed_alert(25, "position no longer reported", removed=True)],
    )


@pytest.mark.parametrize(
    ("before", "after"), [(0, 0), (0, None), (None, 0), (25, 10), (25, -25), (-25, -50)]
)
def test_no_alert_unless_an_open_position_closes(before: int | None, after: int | None) -> None:
    """Flat staying flat, a flat row vanishing, a partial close or a flip raise nothing."""
    assert run(before, after) == (None, [])


def test_silent_on_baseline() -> None:
    """The baseline poll never reports square-offs."""
    assert run(25, 0, baseline=True) == (None, [])


def test_vanished_row_is_silent_on_a_new_day() -> None:
    """On the first poll of a new day a row that vanished is dropped silently (day reset)."""
    assert run(25, None, new_day=True) == (None, [])


def test_open_position_reading_zero_on_a_new_day_fires() -> None:
    """A row still reported but now flat was squared off while nobody polled: it fires."""
    _, [alert] = run(25, 0, new_day=True)
    assert alert.details == {
        "net_qty_before": Decimal(25),
        "net_qty": Decimal(0),
        "row_removed": False,
    }


def test_alert_json_contract() -> None:
    """to_json() of a square-off carries the key, symbol and quantities as JSON ints."""
    _, [alert] = run(25, 0)
    assert alert.to_json() == {
        "rule": "closed",
        "kind": "squared_off",
        "severity": "info",
        "state": "firing",
        "account": "kotak-main",
        "exchange_segment": "nse_fo",
        "token": "53179",
        "product": "NRML",
        "symbol": SYMBOL,
        "at": "2026-11-23T09:20:05+05:30",
        "message": f"Squared off {SYMBOL} (nse_fo NRML): was 25, net qty 0",
        "details": {"net_qty_before": 25, "net_qty": 0, "row_removed": False},
    }


def test_two_products_of_one_token_close_independently() -> None:
    """Closing the MIS row of a token held under MIS and NRML reports only the MIS key."""
    mis, nrml = pos("7", 25, product="MIS"), pos("7", 25, product="NRML")
    mis0 = pos("7", 0, product="MIS")
    _, alerts = RULE.evaluate(None, poll(snap(mis0, nrml), change(mis, mis0)))
    assert [a.key for a in alerts] == [key("7", product="MIS")]


def test_stateless() -> None:
    """The rule keeps no state."""
    assert RULE.dump_state(None) is None
    assert RULE.load_state("kotak-main", None) is None
