"""Runs each account's poll on a fixed interval of the event loop's monotonic clock.

Poll timing must not follow the wall clock. APScheduler 3, which scheduled the polls before,
computes every wake-up from wall time: when the clock is stepped back (an NTP correction, a
restored VM snapshot, an operator fixing the date) it waits for the wall clock to catch up, so
polling stops for as long as the step, with no failed poll to raise ``poll_failing``. Trading
windows and trading days still read the wall clock, in the poller and the pipeline; only the
cadence is monotonic.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class _Job:
    name: str
    run: Callable[[], Awaitable[None]]
    every: float  # seconds between starts
    first_in: float  # seconds from start() to the first run


class Ticker:
    """Starts every job each ``every`` seconds; never two runs of one job at once.

    A tick that finds the job's previous run still going is skipped and reported to
    ``on_busy``. Ticks missed while the loop was blocked are run once, then the job goes on on
    its grid.
    """

    def __init__(self, on_busy: Callable[[str], None]) -> None:
        self._on_busy = on_busy
        self._jobs: list[_Job] = []
        self._tickers: list[asyncio.Task[None]] = []

    def add(
        self, name: str, run: Callable[[], Awaitable[None]], every: float, first_in: float = 0.0
    ) -> None:
        """Run ``run()`` every ``every`` seconds, the first time ``first_in`` after start."""
        self._jobs.append(_Job(name, run, every, first_in))

    def start(self) -> None:
        """Begin ticking (inside the running loop)."""
        self._tickers = [
            asyncio.create_task(self._tick(job), name=f"ticker-{job.name}") for job in self._jobs
        ]

    async def stop(self) -> None:
        """Start no more runs; runs in flight go on (their owners wait for or cancel them)."""
        for ticker in self._tickers:
            ticker.cancel()
        await asyncio.gather(*self._tickers, return_exceptions=True)
        self._tickers = []

    async def _tick(self, job: _Job) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + job.first_in
        running: asyncio.Task[None] | None = None
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            if running is not None and not running.done():
                self._on_busy(job.name)
            else:
                running = asyncio.create_task(self._run(job), name=f"run-{job.name}")
            due += job.every
            late = loop.time() - due
            if late > 0:  # the loop was blocked past the next tick: skip to the grid ahead
                due += job.every * (math.floor(late / job.every) + 1)

    async def _run(self, job: _Job) -> None:
        try:
            await job.run()
        except asyncio.CancelledError:
            raise
        except Exception:  # the loop edge: the next tick runs the job again
            log.exception("job_crashed", job=job.name)
