"""Faults: a burst of five 5xx answers, and five transport failures (timeout, connection
refused, reset in the middle of the body).

Expected: no position alert while polls fail, ``poll_failing`` once the configured
``alert_after`` has passed without a good poll, the change made meanwhile and
``poll_recovered`` once polls succeed again; backoff between the failed requests; no poll
outlives its deadline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tests.fakes import portfolio
from tests.fakes.scripted import Reply, html_page
from tests.reliability.harness import (
    PORTFOLIO_TOKEN,
    Daemon,
    FakeServer,
    Harness,
    histogram_within,
    kinds,
    portfolio_account,
    read_jsonl,
    stored_alerts,
)

ALERT_AFTER = 2.0  # seconds: the account's alert_after
Fault = Callable[[FakeServer, portfolio.PortfolioState], Awaitable[None]]


@dataclass
class Outage:
    """What one scripted outage left behind."""

    daemon: Daemon
    arrivals: list[float]  # at the fake: the failed requests and the good one after them
    recorded: list[dict[str, Any]]  # the daemon's --record lines of the failures and recovery
    metrics: str  # a scrape after recovery


async def outage(harness: Harness, faults: list[Fault], **account: object) -> Outage:
    """Baseline, then RELIANCE goes short while each of ``faults`` fails one poll in turn."""
    fake = portfolio.PortfolioState(token=PORTFOLIO_TOKEN)
    server = FakeServer(lambda: portfolio.make_app(fake))
    record = harness.tmp / "session.jsonl"
    async with server:
        config = harness.rules(
            [portfolio_account(server.base, alert_after=f"{ALERT_AFTER:g}s", **account)]
        )
        daemon = harness.daemon(config, None, "--record", str(record))
        await daemon.started()
        await daemon.wait_event("baseline_taken")
        start, good = len(fake.requests), len(read_jsonl(record))
        fake.rows[0]["netQty"] = "-10"
        for failed, fault in enumerate(faults, start=1):
            await fault(server, fake)
            await daemon.wait_sample(
                "position_monitor_polls_total", failed, 60, account="p1", outcome="unavailable"
            )
            assert kinds(daemon.alerts()) in ([], [("poll_failing", None)]), "nothing else yet"
            if not server.running:
                await server.start()  # the refused poll is over: the gateway is back
        failed = len(fake.requests) - start  # the next request waits out the backoff (>= 1 s)
        await daemon.wait_alerts(3, seconds=60)
        arrivals = [r.at for r in fake.requests[start : start + failed + 1]]
        text = await daemon.metrics()
        assert await daemon.sigterm() == 0
    # The failed polls and the good one after them (later good polls may follow in the file).
    return Outage(daemon, arrivals, read_jsonl(record)[good : good + len(faults) + 1], text)


def assert_outage_reported(run: Outage, harness: Harness, failures: int) -> dict[str, Any]:
    """One poll_failing after alert_after, then the short and poll_recovered, once each."""
    alerts = run.daemon.alerts()
    assert kinds(alerts) == [
        ("poll_failing", None),
        ("fresh-short", "RELIANCE-EQ"),
        ("poll_recovered", None),
    ]
    assert alerts == stored_alerts(harness.tmp / "state.db"), "each printed once"
    failing = alerts[0]
    last_good = datetime.fromisoformat(failing["details"]["last_success"])
    silent = datetime.fromisoformat(failing["at"]) - last_good
    assert silent.total_seconds() >= ALERT_AFTER, "not before alert_after"
    assert failing["severity"] == "critical" and failing["details"]["failed_polls"] >= 1
    assert alerts[2]["details"] == {"failed_polls": 0, "last_success": alerts[1]["at"]}
    assert len(run.daemon.events("poll_failed")) == 1, "logged on the transition only"
    assert [e["failed_polls"] for e in run.daemon.events("poll_recovered")] == [failures]
    # A generous bound: 1 s request timeouts make a 4 s whole-poll deadline; a poll that hung
    # on the held reply would never end (the outage would never be reported).
    within, total = histogram_within(
        run.metrics, "position_monitor_poll_duration_seconds", "5.0", broker="portfolio"
    )
    assert total >= failures + 2 and within == total, "no poll took over 5 s"
    return failing


async def test_5xx_burst_for_five_polls(harness: Harness) -> None:
    """500, 502 (HTML), 503 (HTML), 504 (empty), 500: silent on positions, then all at once."""
    replies = [
        portfolio.failed(500),
        html_page(502),
        html_page(503),
        Reply(504, b""),
        portfolio.failed(500),
    ]

    def queue(reply: Reply) -> Fault:
        async def fault(_server: FakeServer, fake: portfolio.PortfolioState) -> None:
            fake.faults.append(reply)

        return fault

    run = await outage(harness, [queue(r) for r in replies])
    failing = assert_outage_reported(run, harness, 5)
    assert failing["details"]["reason"].startswith("HTTP 5")
    assert [line.get("status") for line in run.recorded] == [500, 502, 503, 504, 500, 200]
    # One request per attempt, each after at least half the capped exponential delay that
    # starts at the 500 ms interval (equal jitter): 0.25, 0.5, 1, 2, 4 s.
    assert len(run.arrivals) == 6
    gaps = [b - a for a, b in zip(run.arrivals, run.arrivals[1:], strict=False)]
    assert all(gap >= 0.25 * 2**n for n, gap in enumerate(gaps)), gaps


async def test_timeouts_refused_connections_and_resets_mid_body(harness: Harness) -> None:
    """A reply held past the 1 s timeout, nothing listening, a TCP reset half-way through
    the body, one poll each: the same story as the 5xx burst, and no poll hangs."""

    async def slow(_server: FakeServer, fake: portfolio.PortfolioState) -> None:
        fake.faults.append(Reply(delay=600))  # held until the fake stops: far too late

    async def refused(server: FakeServer, _fake: portfolio.PortfolioState) -> None:
        await server.stop()

    async def reset(server: FakeServer, _fake: portfolio.PortfolioState) -> None:
        server.cut_next()

    run = await outage(harness, [slow, refused, reset], timeout="1s")
    failing = assert_outage_reported(run, harness, 3)
    errors = [line.get("error") for line in run.recorded]
    assert errors == [
        "127.0.0.1: timed out",
        "127.0.0.1: ClientConnectorError",
        "127.0.0.1: ClientPayloadError",
        None,
    ]
    assert failing["details"]["reason"] in errors
    assert run.daemon.events("poll_failed")[0]["reason"] == "127.0.0.1: timed out"
    assert len(run.arrivals) == 3, "the refused connection never reached the fake"
