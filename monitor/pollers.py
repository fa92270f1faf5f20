"""The accounts being polled: each one's poller, broker client and timer, added and removed
while the daemon runs (a reload; README, "Reloading the configuration").

Each account's polls run on a plain asyncio timer: one task per account sleeping until the
next due time on the loop's monotonic clock. Due times never drift (the next is the previous
plus the interval) and a wall-clock step moves none of them; a slot that passes while the
previous poll is still running is skipped and counted, never made up in a burst. The trading
window and calendar are the poller's guard (``AccountPoller.poll``). See docs/architecture.md,
"Data flow".
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random

import structlog

from monitor.brokers import Broker
from monitor.health import HealthTracker, PollOutcome
from monitor.metrics import Metrics
from monitor.poller import AccountPoller

log = structlog.get_logger(__name__)

POLL_DRAIN_SECONDS = 5.0


class Pollers:
    """One timer task per account, each running its account's poller."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._running: dict[str, tuple[AccountPoller, Broker]] = {}
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._started = False

    @property
    def pollers(self) -> list[AccountPoller]:
        """Every account's poller, in the order added."""
        return [poller for poller, _ in self._running.values()]

    def health(self) -> list[HealthTracker]:
        """Every account's health tracker."""
        return [poller.health for poller in self.pollers]

    def add(self, poller: AccountPoller, broker: Broker) -> None:
        """Poll the account of ``poller`` with ``broker`` from now on (from ``start`` on, when
        the pollers have not started yet)."""
        self._running[poller.account.id] = (poller, broker)
        if self._started:
            self._start_timer(poller)

    def start(self) -> None:
        """Start every account's timer."""
        self._started = True
        for poller in self.pollers:
            self._start_timer(poller)

    async def remove(self, account: str) -> None:
        """Stop polling ``account``: no new poll starts, the one in flight finishes (bounded,
        then cancelled with nothing of it committed), its client closes and its series are no
        longer exported."""
        poller, broker = self._running.pop(account)
        poller.retire()
        await _drain([poller])
        await _cancel([self._timers.pop(account)] if account in self._timers else [])
        await broker.close()
        poller.forget_metrics()

    async def stop(self) -> None:
        """Stop every poll: no new one starts, those in flight finish (bounded) or are
        cancelled; then close every client."""
        self._started = False
        for poller in self.pollers:
            poller.retire()
        await _drain(self.pollers)
        await _cancel(list(self._timers.values()))
        self._timers.clear()
        for _, broker in self._running.values():
            await broker.close()

    def _start_timer(self, poller: AccountPoller) -> None:
        ident = poller.account.id
        task = asyncio.create_task(self._every(poller), name=f"poll-{ident}")
        self._timers[ident] = task

    async def _every(self, poller: AccountPoller) -> None:
        """Poll at every due time until the account is retired."""
        loop = asyncio.get_running_loop()
        every = poller.account.poll_every.total_seconds()
        lag = self._metrics.poll_lag
        skipped = self._metrics.polls.labels(poller.account.id, PollOutcome.SKIPPED_BUSY)
        # The first poll comes within a second of the start, so every account has a baseline
        # early; the second comes half an interval to one and a half after it, so from then
        # on the accounts' polls are spread evenly over the interval rather than crowded into
        # its first second (5,000 accounts at 5 s: 1,000 polls a second, not 5,000 in one).
        due = loop.time() + random.uniform(0, min(1.0, every))  # noqa: S311 - spread, not a secret  # nosec B311
        gap = every * random.uniform(0.5, 1.5)  # noqa: S311  # nosec B311
        while not poller.retired:
            await asyncio.sleep(due - loop.time())
            lag.observe(loop.time() - due)
            try:
                await poller.poll()
            except Exception:  # the timer's edge: a bug in one poll must not end the polling
                log.exception("poll_crashed", account=poller.account.id)
            due += gap
            gap = every
            late = loop.time() - due
            if late > 0:  # slots that passed while this poll ran (or the loop was held up)
                missed = math.ceil(late / every)
                skipped.inc(missed)
                due += missed * every


async def _drain(pollers: list[AccountPoller]) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(POLL_DRAIN_SECONDS):
            await asyncio.gather(*(p.wait_idle() for p in pollers))
    # Whatever is still polling is cancelled before anything it uses is closed.
    await asyncio.gather(*(p.cancel() for p in pollers))


async def _cancel(timers: list[asyncio.Task[None]]) -> None:
    for timer in timers:
        timer.cancel()
    await asyncio.gather(*timers, return_exceptions=True)
