"""Fault: the broker answers 200 with a body that cannot be trusted.

Malformed JSON, a truncated body, an HTML error page, empty (null) ``data``, an empty body, a
row missing a field, and a 50 MB body. Expected for each: a failed poll, one clear log line
naming the broker and the reason, no alert (a body read as "no positions" would report every
position squared off), and the 50 MB body cut at the 16 MiB cap, not read whole.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.fakes import portfolio, serve
from tests.fakes.scripted import Reply, html_page
from tests.reliability.harness import (
    PORTFOLIO_TOKEN,
    Harness,
    portfolio_account,
    stored_alerts,
    until,
)

FIFTY_MB = 50 * 1024 * 1024


def envelope(**fields: object) -> bytes:
    """A Status Success envelope with ``fields`` replaced."""
    return json.dumps({"Status": "Success", "message": "", "errorCode": "", **fields}).encode()


def peak_memory_kib(pid: int) -> int:
    """The process's peak resident set (VmHWM), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


async def test_untrustworthy_bodies_fail_the_poll_with_a_clear_reason(harness: Harness) -> None:
    """Each bad body is one failed poll whose log line says what was wrong; no alert."""
    fake = portfolio.PortfolioState(token=PORTFOLIO_TOKEN)
    good = fake.body()
    row = dict(fake.rows[0])
    del row["netQty"]
    bad = {
        "malformed JSON": (Reply(200, b'{"Status": "Success", "data": [{"tok": "11536",,]}'),
                           "body: not valid JSON (JSON is malformed: object keys must be strings"),
        "truncated": (Reply(200, good[: len(good) // 2]),
                      "body: not valid JSON (Input data was truncated)"),
        "HTML page": (html_page(200), "body: not valid JSON (JSON is malformed"),
        "null data": (Reply(200, envelope(data=None)),
                      "data: missing from a Status Success response"),
        "empty body": (Reply(200, b""), "body: not valid JSON (Input data was truncated)"),
        "missing field": (Reply(200, envelope(data=[row])),
                          "data[0]: Object missing required field `netQty`"),
        "50 MB": (Reply(200, b'{"Status": "Success", "data": [' + b" " * FIFTY_MB + b"]}"),
                  "127.0.0.1: body larger than 16777216 bytes"),
    }  # fmt: skip
    async with serve(portfolio.make_app(fake)) as base:
        # A request may take as long as it needs: on a busy machine 16 MiB can take longer to
        # read than a 500 ms poll's default budget, and then the poll would be a timeout, not
        # the cut this test is about.
        account = portfolio_account(base, timeout="60s")
        daemon = harness.daemon(harness.rules([account]))
        await daemon.started()
        await daemon.wait_event("baseline_taken")
        assert daemon.process is not None
        before = peak_memory_kib(daemon.process.pid)
        for reply, _ in bad.values():
            fake.faults.extend([reply, Reply()])  # each bad body follows a good poll
        await daemon.wait_event("poll_recovered", count=len(bad), seconds=60)
        grown = peak_memory_kib(daemon.process.pid) - before
        bad_polls = await daemon.sample(
            "position_monitor_polls_total", account="p1", outcome="bad_response"
        )
        await until(lambda: len(fake.requests) > 2 * len(bad) + 2, "a few more good polls")
        assert await daemon.sigterm() == 0

    failed = daemon.events("poll_failed")
    assert len(failed) == len(bad) == bad_polls
    for event, (what, (_, reason)) in zip(failed, bad.items(), strict=True):
        assert event["broker"] == "portfolio" and event["outcome"] == "bad_response", what
        assert event["level"] == "warning"
        assert event["reason"].startswith(reason), (what, event["reason"])
    assert daemon.alerts() == [] == stored_alerts(harness.tmp / "state.db")
    # Read whole, the 50 MB body would have grown the daemon by 50 MB at least.
    assert grown < 40 * 1024, f"peak memory grew {grown} KiB"
