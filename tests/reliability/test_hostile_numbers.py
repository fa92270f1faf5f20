"""Fault: one account's broker sends a number no account can hold ("-1e999999").

Printed in full, such a figure took the event loop for most of a minute: every other account
stopped polling, /healthz stopped answering and SIGTERM waited. Expected: the body is a failed
poll naming the field, while another account on the same daemon polls on and /healthz answers.
"""

from __future__ import annotations

import aiohttp

from tests.fakes import portfolio, serve
from tests.reliability.harness import PORTFOLIO_TOKEN, Harness, portfolio_account

POLLS = "position_monitor_polls_total"


async def healthz(daemon_port: int) -> int:
    """The status of one GET /healthz."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.get(f"http://127.0.0.1:{daemon_port}/healthz") as response,
    ):
        return response.status


async def test_a_hostile_number_fails_one_poll_and_stalls_nothing(harness: Harness) -> None:
    """p1's netQty turns "-1e999999": its polls fail as bad_response naming data[0].netQty;
    p2 keeps polling ok and /healthz keeps answering meanwhile."""
    hostile = portfolio.PortfolioState(token=PORTFOLIO_TOKEN)
    calm = portfolio.PortfolioState(token=PORTFOLIO_TOKEN)
    async with serve(portfolio.make_app(hostile)) as one, serve(portfolio.make_app(calm)) as two:
        accounts = [portfolio_account(one, "p1"), portfolio_account(two, "p2")]
        daemon = harness.daemon(harness.rules(accounts))
        port = await daemon.started()
        await daemon.wait_event("baseline_taken", count=2)

        hostile.rows[0]["netQty"] = "-1e999999"
        await daemon.wait_sample(POLLS, 1, seconds=30, account="p1", outcome="bad_response")
        calm_polls = await daemon.sample(POLLS, account="p2", outcome="ok")
        # While p1 keeps failing, p2 polls three more times and /healthz answers.
        await daemon.wait_sample(POLLS, 3, seconds=30, account="p1", outcome="bad_response")
        await daemon.wait_sample(POLLS, calm_polls + 3, seconds=30, account="p2", outcome="ok")
        assert await healthz(port) == 200
        assert await daemon.sigterm() == 0

    (failed,) = daemon.events("poll_failed")
    assert failed["account"] == "p1" and failed["outcome"] == "bad_response"
    assert failed["reason"] == (
        "data[0].netQty: out of range: '-1E+999999' is not below 10^12 in magnitude"
    )
    assert daemon.alerts() == []
