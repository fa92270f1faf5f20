"""Delivers the store's outbox to every sink: in order, with retries, one task per sink.

Written once for all sinks: a sink only says whether a failure is retryable. A retryable failure
keeps the alert at the head of that sink's queue and backs off (capped exponential, jittered),
so order is kept and a broken sink never delays the others. A permanent failure parks the alert
as undeliverable, logged once, and the queue moves on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import structlog

from monitor.backoff import Backoff
from monitor.metrics import Metrics
from monitor.notify.base import DeliveryFailed, Reason, Sink
from monitor.store import Store, StoreError

log = structlog.get_logger(__name__)

BATCH = 100
MAX_CRASHES = 5  # attempts before an alert that makes a sink raise unexpectedly is parked


class Dispatcher:
    """Drains the outbox into the sinks; ``wake()`` after committing new alerts."""

    def __init__(
        self,
        store: Store,
        sinks: Sequence[Sink],
        metrics: Metrics,
        *,
        backoff: Backoff | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._sinks = tuple(sinks)
        self._metrics = metrics
        for sink in self._sinks:
            metrics.track_sink(sink.name)
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._wakeups = {sink.name: asyncio.Event() for sink in self._sinks}
        self._failures = dict.fromkeys(self._wakeups, 0)
        # Alerts a sink accepted whose delivery the state file has not recorded yet (it was
        # locked or full): the retry records them instead of sending them again.
        self._unrecorded: dict[str, set[int]] = {name: set() for name in self._wakeups}

    def wake(self) -> None:
        """New alerts are committed: every sink looks at the outbox now."""
        for event in self._wakeups.values():
            event.set()

    async def run(self) -> None:
        """Deliver until cancelled. Anything left in the outbox at start is sent first."""
        self.wake()
        async with asyncio.TaskGroup() as group:
            for sink in self._sinks:
                group.create_task(self._serve(sink), name=f"sink-{sink.name}")

    async def flush(self) -> None:
        """Try once to deliver everything pending; call after ``run`` has stopped."""
        for sink in self._sinks:
            await self._drain(sink)

    def update_depth(self) -> None:
        """Refresh the outbox depth gauge from the store."""
        depth = self._store.outbox_depth()
        for sink in self._sinks:
            self._metrics.outbox_depth.labels(sink.name).set(depth.get(sink.name, 0))

    async def _serve(self, sink: Sink) -> None:
        wakeup = self._wakeups[sink.name]
        while True:
            failures = self._failures[sink.name]
            if failures:
                # Backing off: new alerts queue behind the one that failed, so do not wake early.
                await asyncio.sleep(self._backoff.delay(failures))
            else:
                await wakeup.wait()
            wakeup.clear()
            try:
                await self._drain(sink)
            except StoreError as err:
                log.error("outbox_failed", sink=sink.name, error=str(err))
                self._failures[sink.name] += 1

    async def _drain(self, sink: Sink) -> None:
        """Deliver pending alerts in order until none are left or one fails retryably."""
        name = sink.name
        unrecorded = self._unrecorded[name]
        while batch := self._store.pending(name, BATCH):
            for item in batch:
                if item.id in unrecorded:
                    self._delivered(item.id, name)
                    continue
                try:
                    await sink.send(item.alert)
                except DeliveryFailed as err:
                    failure = err
                except Exception as err:  # a sink bug: retried a few times, then parked
                    log.exception("delivery_crashed", sink=name, alert_id=item.id)
                    retryable = item.attempts + 1 < MAX_CRASHES
                    failure = DeliveryFailed(Reason.SINK_ERROR, repr(err), retryable=retryable)
                else:
                    unrecorded.add(item.id)
                    self._delivered(item.id, name)
                    continue
                self._metrics.deliveries.labels(name, str(failure.reason)).inc()
                if failure.retryable:
                    self._store.mark_attempt_failed(item.id, name, str(failure))
                    if not self._failures[name]:
                        log.warning("delivery_failing", sink=name, reason=str(failure))
                    self._failures[name] += 1
                    self.update_depth()
                    return
                self._store.mark_undeliverable(item.id, name, str(failure), self._clock())
                self._metrics.undeliverable.labels(name).inc()
                log.error(
                    "delivery_undeliverable", sink=name, alert_id=item.id, reason=str(failure)
                )
        if self._failures[name]:
            log.info("delivery_recovered", sink=name, failed_attempts=self._failures[name])
            self._failures[name] = 0
        self.update_depth()

    def _delivered(self, alert_id: int, name: str) -> None:
        """Record that ``name`` took the alert; a StoreError leaves it to record next time."""
        self._store.mark_delivered(alert_id, name, self._clock())
        self._unrecorded[name].discard(alert_id)
        self._metrics.deliveries.labels(name, "delivered").inc()
