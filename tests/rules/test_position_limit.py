"""``position_limit``: active above ``max_quantity`` either way, position scope only, no MTM
needed."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from monitor.model import AlertState, Severity
from monitor.rules.base import PositionFilter, RuleConfigError
from monitor.rules.conditions import Scope
from monitor.rules.lifecycle import Lifecycle, Outcome
from monitor.rules.position_limit import PositionLimit, build
from tests.snapshots import T0, key, poll, pos, snap

LIMIT = build("size", Severity.WARNING, PositionFilter(), {"max_quantity": 100})


@pytest.mark.parametrize(
    ("qty", "outcome"),
    [("100", Outcome.CLEAR), ("-100", Outcome.CLEAR), ("100.5", Outcome.ACTIVE),
     ("-101", Outcome.ACTIVE), ("0", Outcome.CLEAR)],
)  # fmt: skip
def test_active_above_the_limit_long_or_short(qty: str, outcome: Outcome) -> None:
    """|net qty| > max_quantity is active; exactly the limit is not."""
    assert LIMIT.assess(Decimal(qty), None) == (outcome, None)


def test_fires_per_position_without_a_price() -> None:
    """A row with unknown MTM is still judged on its quantity; the alert names the row."""
    rows = (pos("1", -150, mtm=None), pos("2", 50, mtm=None))
    state, [alert] = LIMIT.evaluate(None, poll(snap(*rows)))
    assert list(state) == [key("1")]
    assert alert.to_json() == {
        "rule": "size",
        "kind": "position_limit",
        "severity": "warning",
        "state": "firing",
        "account": "kotak-main",
        "exchange_segment": "nse_fo",
        "token": "1",
        "product": "NRML",
        "symbol": "SYM1",
        "at": T0.isoformat(),
        "message": "Position over the limit on SYM1 (nse_fo NRML): net qty -150, limit 100",
        "details": {"net_qty": -150, "max_quantity": 100},
    }


def test_resolves_when_reduced() -> None:
    """With send_resolved, bringing the row back within the limit sends a resolved alert."""
    rule = build(
        "size", Severity.WARNING, PositionFilter(), {"max_quantity": 100, "send_resolved": True}
    )
    state, [_] = rule.evaluate(None, poll(snap(pos("1", 150))))
    _, [alert] = rule.evaluate(state, poll(snap(pos("1", 75))))
    assert (alert.state, alert.details["net_qty"]) == (AlertState.RESOLVED, Decimal(75))


def test_build_reads_max_quantity() -> None:
    """A fractional limit is allowed (alphapoint quantities are decimals); scope is position."""
    options = {"max_quantity": "0.5", "scope": "position", "for": "1m"}
    assert build("size", Severity.INFO, PositionFilter(), options) == PositionLimit(
        "size", Severity.INFO, PositionFilter(), Scope.POSITION,
        Lifecycle(hold_for=timedelta(minutes=1)), Decimal("0.5"),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "max_quantity: required for kind position_limit"),
        ({"max_quantity": 0}, "max_quantity: must be a positive amount; got 0"),
        ({"max_quantity": -5}, "max_quantity: must be a positive amount; got -5"),
        ({"max_quantity": 5, "scope": "account"},
         "scope: must be position: kind position_limit has no other scope; got 'account'"),
        ({"max_quantity": 5, "threshold": 1}, "threshold: unknown field for kind position_limit"),
    ],
)  # fmt: skip
def test_build_errors_name_the_field(options: dict[str, object], message: str) -> None:
    """Each bad option is one RuleConfigError naming its field."""
    with pytest.raises(RuleConfigError, match=f"^{message}$"):
        build("size", Severity.WARNING, PositionFilter(), options)
