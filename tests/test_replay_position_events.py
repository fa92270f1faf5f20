"""``new_position`` and ``quantity_change`` through ``replay``: broker bodies, diff, rules and
store, as the daemon runs them.

tests/fixtures/rules/position_events.yaml has ``opened`` (new_position, info) and ``big-size``
(quantity_change, min_change 10, warning).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
RULES = FIXTURES / "rules" / "position_events.yaml"


def test_portfolio_openings_and_size_changes(capsys: pytest.CaptureFixture[str]) -> None:
    """Baseline RELIANCE 10; INFY opens short -5 (a change of 5: below min_change); RELIANCE
    10 -> 30; a failed poll; INFY -5 -> -20, RELIANCE 30 -> 25 (5: silent) and NIFTY opens
    long 50; RELIANCE closes. Within a poll: rules in file order, then rows in answer order."""
    fixture = FIXTURES / "replay" / "new_position_quantity_change.jsonl"
    code = main(["replay", str(fixture), "--rules", str(RULES), "--output", "jsonl"])
    out, err = capsys.readouterr()
    assert code == 0
    assert err.splitlines() == [
        f"{fixture}:4: account pf-desk: poll failed: portfolio: transport error: timeout"
    ]
    alerts = [json.loads(line) for line in out.splitlines()]
    got = [(a["at"][11:19], a["rule"], a["symbol"], *a["details"].values()) for a in alerts]
    assert got == [  # details: net_qty_before, net_qty[, change]
        ("09:20:00", "opened", "INFY-EQ", 0, -5),
        ("09:25:00", "big-size", "RELIANCE-EQ", 10, 30, 20),
        ("09:35:00", "opened", "NIFTY25DECFUT", 0, 50),
        ("09:35:00", "big-size", "INFY-EQ", -5, -20, -15),
        ("09:35:00", "big-size", "NIFTY25DECFUT", 0, 50, 50),
        ("09:40:00", "big-size", "RELIANCE-EQ", 25, 0, -25),
    ]
    assert [list(a["details"]) for a in alerts[1:2]] == [["net_qty_before", "net_qty", "change"]]
    assert alerts[0] == {
        "rule": "opened",
        "kind": "new_position",
        "severity": "info",
        "state": "firing",
        "account": "pf-desk",
        "exchange_segment": "nse_cm",
        "token": "1594",
        "product": "",
        "symbol": "INFY-EQ",
        "at": "2026-11-23T09:20:00+05:30",
        "message": "New short position INFY-EQ (nse_cm): net qty 0 -> -5",
        "details": {"net_qty_before": 0, "net_qty": -5},
    }
    assert alerts[1]["kind"] == "quantity_change"
    assert alerts[1]["message"] == "Quantity change RELIANCE-EQ (nse_cm): net qty 10 -> 30 (+20)"
