"""Fault: the broker leaves rows out of its answer for one poll, then reports them again.

Documented behaviour (docs/architecture.md, "Rows that vanish"): only a good snapshot can square a
position off, and only when the next good poll of the same day confirms it. A failed poll that
lacks rows changes nothing; a good answer that lacks rows (or is empty) carries them for that
one poll, and a row back at the next poll raises nothing. Missing from two good answers in a
row, it is a square-off (``details.row_removed``: true) at the second, reported once; when it
returns, it is a new position: ``new_short`` if it is short, nothing if it is long.
"""

from __future__ import annotations

import json
from collections import Counter

from tests.fakes import portfolio, serve
from tests.fakes.scripted import Reply
from tests.reliability.harness import (
    PORTFOLIO_TOKEN,
    Harness,
    kinds,
    pf_row,
    portfolio_account,
    stored_alerts,
    until,
)

RELIANCE = pf_row("11536", "RELIANCE-EQ", "10", "145.00")
INFY = pf_row("1594", "INFY-EQ", "-5", "-20.00")
TCS = pf_row("11537", "TCS-EQ", "7", "35.00")


def body(*rows: dict[str, str]) -> bytes:
    """A good positions answer holding ``rows``."""
    document = {"Status": "Success", "message": "", "errorCode": "", "data": list(rows)}
    return json.dumps(document).encode()


async def test_rows_missing_for_one_poll(harness: Harness) -> None:
    """A failed poll without INFY, a good one without INFY and TCS, an empty one, each followed
    by the full answer: no alert at all, and all three rows held throughout."""
    fake = portfolio.PortfolioState(token=PORTFOLIO_TOKEN, rows=[RELIANCE, INFY, TCS])
    async with serve(portfolio.make_app(fake)) as base:
        daemon = harness.daemon(harness.rules([portfolio_account(base)]))
        await daemon.started()
        await daemon.wait_event("baseline_taken")
        truncated = body(RELIANCE, TCS)[:-3]
        fake.faults.extend([Reply(200, truncated), Reply(), Reply(200, body(RELIANCE)), Reply()])
        fake.faults.extend([Reply(200, body()), Reply()])
        seen = len(fake.requests)
        await until(lambda: len(fake.requests) >= seen + 8, "the script and two more polls")
        assert not fake.faults, "every scripted answer was served"
        positions = await daemon.sample("position_monitor_positions", account="p1")
        assert await daemon.sigterm() == 0

    assert daemon.alerts() == []
    assert stored_alerts(harness.tmp / "state.db") == []
    assert positions == 3
    assert [e["outcome"] for e in daemon.events("poll_failed")] == ["bad_response"]


async def test_rows_missing_for_two_polls(harness: Harness) -> None:
    """Two good answers in a row without INFY and TCS: both squared off (row removed) once; their
    return: INFY (short) is new_short once, TCS (long) nothing."""
    fake = portfolio.PortfolioState(token=PORTFOLIO_TOKEN, rows=[RELIANCE, INFY, TCS])
    async with serve(portfolio.make_app(fake)) as base:
        daemon = harness.daemon(harness.rules([portfolio_account(base)]))
        await daemon.started()
        await daemon.wait_event("baseline_taken")
        short = body(RELIANCE)
        fake.faults.extend([Reply(200, short), Reply(200, short), Reply()])
        await daemon.wait_alerts(3)
        seen = len(fake.requests)
        await until(lambda: len(fake.requests) >= seen + 3, "three more polls, no more alerts")
        positions = await daemon.sample("position_monitor_positions", account="p1")
        assert await daemon.sigterm() == 0

    alerts = daemon.alerts()
    assert Counter(kinds(alerts)) == Counter(
        [("closed", "INFY-EQ"), ("closed", "TCS-EQ"), ("fresh-short", "INFY-EQ")]
    )
    assert kinds(alerts)[-1] == ("fresh-short", "INFY-EQ"), "the return comes after"
    removed = [a for a in alerts if a["rule"] == "closed"]
    assert all(a["details"]["row_removed"] is True for a in removed)
    assert len({a["at"] for a in removed}) == 1, "both at the second short answer"
    assert alerts == stored_alerts(harness.tmp / "state.db")
    assert positions == 3
