"""The daemon's clock watch: a wall-clock step makes every poll due at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.clock_watch import watch_clock


async def test_a_step_back_makes_every_job_due_and_steady_time_changes_nothing() -> None:
    """Jobs an hour away stay put while the clocks agree; a 30 s step back brings them due."""
    runs: list[str] = []

    async def poll(name: str) -> None:
        runs.append(name)

    scheduler = AsyncIOScheduler(timezone=UTC)
    later = datetime.now(UTC) + timedelta(hours=1)
    for name in ("a", "b"):
        scheduler.add_job(
            poll, IntervalTrigger(hours=1, timezone=UTC), args=[name], id=name,
            next_run_time=later, max_instances=1, coalesce=True,
        )  # fmt: skip
    wall_offset = [0.0]
    loop = asyncio.get_running_loop()
    watch = asyncio.create_task(
        watch_clock(
            scheduler, wall=lambda: loop.time() + wall_offset[0], monotonic=loop.time, every=0.02
        )
    )
    scheduler.start()
    try:
        await asyncio.sleep(0.2)
        assert runs == []
        assert all(job.next_run_time == later for job in scheduler.get_jobs())
        wall_offset[0] = -30.0  # the wall clock steps back
        async with asyncio.timeout(30):  # generous: a busy machine is slow, not wrong
            while sorted(runs) != ["a", "b"]:
                await asyncio.sleep(0.02)
        now = datetime.now(UTC)
        for job in scheduler.get_jobs():
            # The interval runs on from the step: the next poll an hour later, not two.
            assert timedelta(minutes=59) < job.next_run_time - now <= timedelta(hours=1)
        await asyncio.sleep(0.2)
        assert sorted(runs) == ["a", "b"], "one step, one catch-up run each"
    finally:
        watch.cancel()
        scheduler.shutdown(wait=False)
