"""The poll ticker: a fixed monotonic cadence, one run at a time, busy ticks reported."""

from __future__ import annotations

import asyncio
import itertools
import time

from structlog.testing import capture_logs

from monitor.ticker import Ticker


async def test_runs_on_its_interval_from_the_first_offset() -> None:
    """First run after ``first_in``, then one per interval."""
    loop = asyncio.get_running_loop()
    starts: list[float] = []

    async def job() -> None:
        starts.append(loop.time())

    ticker = Ticker(on_busy=lambda name: None)
    ticker.add("a", job, every=0.05, first_in=0.1)
    began = loop.time()
    ticker.start()
    await asyncio.sleep(0.33)
    await ticker.stop()
    assert starts[0] - began >= 0.1
    assert 4 <= len(starts) <= 6
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(gap >= 0.045 for gap in gaps), gaps


async def test_a_run_still_going_at_the_next_tick_is_not_started_twice() -> None:
    """A slow run: the ticks during it are reported busy, never overlapped."""
    running = 0
    most = 0
    busy: list[str] = []

    async def slow() -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.12)
        running -= 1

    ticker = Ticker(on_busy=busy.append)
    ticker.add("slow", slow, every=0.05)
    ticker.start()
    await asyncio.sleep(0.3)
    await ticker.stop()
    assert most == 1
    assert busy and set(busy) == {"slow"}


async def test_ticks_missed_while_the_loop_was_blocked_run_once() -> None:
    """The loop blocked for six intervals: one catch-up run, not six."""
    runs = 0

    async def job() -> None:
        nonlocal runs
        runs += 1

    ticker = Ticker(on_busy=lambda name: None)
    ticker.add("a", job, every=0.05)
    ticker.start()
    await asyncio.sleep(0.01)
    assert runs == 1
    time.sleep(0.3)  # noqa: ASYNC251 - blocking the loop is the point
    await asyncio.sleep(0.02)
    assert runs in (2, 3), "one catch-up run (and perhaps the next tick), not six"
    await ticker.stop()


async def test_a_crashing_run_is_logged_and_the_next_tick_runs_again() -> None:
    """An exception out of a run is the loop edge: logged with the job's name, polling goes on."""
    runs = 0

    async def broken() -> None:
        nonlocal runs
        runs += 1
        raise RuntimeError("bug")

    ticker = Ticker(on_busy=lambda name: None)
    ticker.add("acct", broken, every=0.05)
    with capture_logs() as logs:
        ticker.start()
        await asyncio.sleep(0.12)
        await ticker.stop()
    assert runs >= 2
    assert {(e["event"], e["job"]) for e in logs} == {("job_crashed", "acct")}


async def test_stop_starts_nothing_more_and_leaves_the_run_in_flight() -> None:
    """After stop() no run starts; the one in flight finishes by itself."""
    finished = asyncio.Event()
    starts = 0

    async def job() -> None:
        nonlocal starts
        starts += 1
        await asyncio.sleep(0.1)
        finished.set()

    ticker = Ticker(on_busy=lambda name: None)
    ticker.add("a", job, every=0.05)
    ticker.start()
    await asyncio.sleep(0.02)
    await ticker.stop()
    await asyncio.wait_for(finished.wait(), 1)
    await asyncio.sleep(0.1)
    assert starts == 1
