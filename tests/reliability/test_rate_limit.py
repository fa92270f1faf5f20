"""Fault: the broker answers 429 Too Many Requests, with and without Retry-After.

Expected: no request before Retry-After has passed, capped exponential backoff without it (the
fake counts every request), and the change made meanwhile is reported once afterwards.
"""

from __future__ import annotations

from tests.fakes import portfolio, serve
from tests.fakes.scripted import json_reply
from tests.reliability.harness import PORTFOLIO_TOKEN, Harness, kinds, portfolio_account, until

LIMITED = {"Status": "Failed", "message": "Too many requests", "errorCode": "429"}


async def test_429_retry_after_is_waited_out_and_backoff_without_it(harness: Harness) -> None:
    """Retry-After: 3 means no request for 3 s; three bare 429s space requests out."""
    fake = portfolio.PortfolioState(token=PORTFOLIO_TOKEN)
    async with serve(portfolio.make_app(fake)) as base:
        daemon = harness.daemon(harness.rules([portfolio_account(base)]))
        await daemon.started()
        await daemon.wait_event("baseline_taken")

        fake.faults.append(json_reply(LIMITED, 429, **{"Retry-After": "3"}))
        fake.rows[0]["netQty"] = "-10"  # sold short while the broker throttles us
        limited = len(fake.requests)
        await daemon.wait_alerts(1)
        limited_at = fake.requests[limited].at
        resumed_at = fake.requests[limited + 1].at
        deferred = await daemon.sample(
            "position_monitor_polls_total", account="p1", outcome="deferred"
        )

        bare = len(fake.requests)
        fake.faults.extend(json_reply(LIMITED, 429) for _ in range(3))
        await until(lambda: len(fake.requests) >= bare + 4, "three 429s and a good poll", 60)
        gaps = [
            b.at - a.at
            for a, b in zip(fake.requests[bare:], fake.requests[bare + 1 :], strict=False)
        ]
        limited_polls = await daemon.sample(
            "position_monitor_polls_total", account="p1", outcome="rate_limited"
        )
        assert await daemon.sigterm() == 0

    assert resumed_at - limited_at >= 3.0, "Retry-After: 3 was honoured"
    assert deferred >= 4, "the scheduled polls inside the wait were counted, not sent"
    # Backoff from the 500 ms interval with equal jitter: at least 0.25, 0.5, 1 s.
    assert all(g >= low for g, low in zip(gaps, (0.25, 0.5, 1.0), strict=True)), gaps
    assert limited_polls == 4
    assert kinds(daemon.alerts()) == [("fresh-short", "RELIANCE-EQ")]
    failed = daemon.events("poll_failed")
    assert [e["outcome"] for e in failed] == ["rate_limited", "rate_limited"]
    assert all(e["broker"] == "portfolio" and e["status"] == 429 for e in failed)
