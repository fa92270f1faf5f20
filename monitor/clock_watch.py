"""Keeps polls on time when the wall clock steps (see ``watch_clock``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = structlog.get_logger(__name__)

CLOCK_STEP_SECONDS = 2.0  # wall-clock drift against the monotonic clock taken for a step


async def watch_clock(
    scheduler: AsyncIOScheduler,
    *,
    wall: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
    every: float = 1.0,
) -> None:
    """Keep polls on time when the wall clock steps.

    APScheduler 3 times its jobs by the wall clock: after a step back (an NTP correction, a
    restored VM, an operator fixing the date) it waits for the wall clock to catch up, polling
    nothing for as long as the step, with no failed poll to raise ``poll_failing``. The wall
    clock is watched against the monotonic one; on a step every job is due at once and the
    intervals run on from there.
    """
    offset = wall() - monotonic()
    while True:
        await asyncio.sleep(every)
        current = wall() - monotonic()
        if abs(current - offset) >= CLOCK_STEP_SECONDS:
            log.warning("clock_stepped", seconds=round(current - offset, 3))
            now = datetime.now(UTC)
            for job in scheduler.get_jobs():
                job.modify(next_run_time=now)
        offset = current
