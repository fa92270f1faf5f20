"""The accounts being polled: each one's poller, broker client and scheduler job, added and
removed while the daemon runs (a reload; README, "Reloading the configuration")."""

from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.brokers import Broker
from monitor.health import HealthTracker, PollOutcome
from monitor.metrics import Metrics
from monitor.poller import AccountPoller

POLL_DRAIN_SECONDS = 5.0


class Pollers:
    """One scheduler job per account, each running its account's poller."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._running: dict[str, tuple[AccountPoller, Broker]] = {}
        self.scheduler = AsyncIOScheduler(timezone=UTC)

        def skipped(event: JobSubmissionEvent) -> None:
            metrics.polls.labels(event.job_id, PollOutcome.SKIPPED_BUSY).inc()

        self.scheduler.add_listener(skipped, EVENT_JOB_MAX_INSTANCES)

    @property
    def pollers(self) -> list[AccountPoller]:
        """Every account's poller, in the order added."""
        return [poller for poller, _ in self._running.values()]

    def health(self) -> list[HealthTracker]:
        """Every account's health tracker."""
        return [poller.health for poller in self.pollers]

    def add(self, poller: AccountPoller, broker: Broker) -> None:
        """Poll the account of ``poller`` with ``broker`` from now on."""
        account = poller.account
        self._running[account.id] = (poller, broker)
        every = account.poll_every.total_seconds()
        # A random sub-interval offset keeps many accounts from polling in lockstep.
        spread = random.uniform(0, min(1.0, every))  # noqa: S311 - spread, not a secret  # nosec B311
        start = datetime.now(UTC) + timedelta(seconds=spread)
        self.scheduler.add_job(
            poller.poll,
            IntervalTrigger(seconds=every, timezone=UTC, start_date=start),
            id=account.id,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=start,
        )

    async def remove(self, account: str) -> None:
        """Stop polling ``account``: no new poll starts, the one in flight finishes (bounded,
        then cancelled with nothing of it committed), its client closes and its series are no
        longer exported."""
        poller, broker = self._running.pop(account)
        poller.retire()
        self.scheduler.remove_job(account)
        await _drain([poller])
        await broker.close()
        poller.forget_metrics()

    async def stop(self) -> None:
        """Stop every poll: no new one starts, those in flight finish (bounded) or are
        cancelled; then close every client."""
        self.scheduler.pause()
        await _drain(self.pollers)
        self.scheduler.shutdown(wait=False)
        for _, broker in self._running.values():
            await broker.close()


async def _drain(pollers: list[AccountPoller]) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(POLL_DRAIN_SECONDS):
            await asyncio.gather(*(p.wait_idle() for p in pollers))
    # Whatever is still polling is cancelled before anything it uses is closed.
    await asyncio.gather(*(p.cancel() for p in pollers))
