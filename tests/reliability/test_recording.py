"""``run --record`` on a filesystem that fills up.

Expected: recording is best effort. While the record file cannot grow, polls still succeed and
alerts still go out; each line lost is counted in ``position_monitor_record_failures_total``,
logged once (``record_failed``), and once space is back recording resumes (``record_recovered``)
with no partial line left in the file. The filesystem is a real 1 MiB tmpfs, as in
test_state_file.py (skipped, saying why, where mounting is impossible).
"""

from __future__ import annotations

from pathlib import Path

from monitor.replay import read_records
from tests.fakes import portfolio, serve
from tests.reliability.harness import (
    PORTFOLIO_TOKEN,
    Harness,
    kinds,
    portfolio_account,
    until,
)
from tests.reliability.test_state_file import fill, open_dir, small_fs  # noqa: F401

RECORD_FAILURES = "position_monitor_record_failures_total"
POLLS = "position_monitor_polls_total"


async def test_a_full_disk_costs_record_lines_not_polls(harness: Harness, small_fs: Path) -> None:  # noqa: F811
    """The record file's filesystem fills up: polls stay ok and the new short is alerted; the
    lost lines are counted and logged once; freed space brings recording back."""
    harness.also_check(small_fs)
    record = small_fs / "polls.jsonl"
    fake = portfolio.PortfolioState(token=PORTFOLIO_TOKEN)
    async with serve(portfolio.make_app(fake)) as base:
        config = harness.rules([portfolio_account(base)])
        daemon = harness.daemon(config, None, "--record", str(record))
        await daemon.started()
        await daemon.wait_event("baseline_taken")
        await until(lambda: record.stat().st_size > 0, "a first recorded line", daemon=daemon)

        filler = fill(small_fs)
        ok_when_full = await daemon.sample(POLLS, account="p1", outcome="ok")
        fake.rows[0]["netQty"] = "-10"
        await daemon.wait_alerts(1)
        await daemon.wait_sample(RECORD_FAILURES, 3)
        await daemon.wait_sample(POLLS, ok_when_full + 3, account="p1", outcome="ok")

        filler.unlink()
        await daemon.wait_event("record_recovered")
        lines_after = len(record.read_bytes().splitlines())
        await until(
            lambda: len(record.read_bytes().splitlines()) > lines_after + 1,
            "two more recorded lines",
            daemon=daemon,
        )
        errors = await daemon.sample(POLLS, account="p1", outcome="error")
        assert await daemon.sigterm() == 0

    assert errors == 0
    assert kinds(daemon.alerts()) == [("fresh-short", "RELIANCE-EQ")]
    [failed] = daemon.events("record_failed")
    assert (failed["file"], failed["error"]) == (str(record), "No space left on device")
    [recovered] = daemon.events("record_recovered")
    assert recovered["lost_lines"] >= 3
    assert not daemon.events("poll_failed")
    replayed = list(read_records(record))  # every line whole: none cut off by the full disk
    assert replayed and all(r.status == 200 for r in replayed)
