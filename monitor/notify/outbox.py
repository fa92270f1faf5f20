"""Delivers the store's outbox to every sink: in order, with retries, one task per sink.

Written once for all sinks: a sink only says whether a failure is retryable. A retryable failure
keeps the alert at the head of that sink's queue and backs off (capped exponential, jittered),
so order is kept and a broken sink never delays the others. A permanent failure parks the alert
as undeliverable, logged once, and the queue moves on. Alerts of one poll are handed over
together; a sink that delivered part of a group says how many, and only the rest is retried.
A sink's bug is charged to the alert it met, never to that alert's neighbours.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

import structlog

from monitor.backoff import Backoff
from monitor.metrics import Metrics
from monitor.model import Alert
from monitor.notify.base import DeliveryFailed, Reason, Sink, sink_bug
from monitor.store import PendingAlert, Store, StoreError

log = structlog.get_logger(__name__)

BATCH = 100
MAX_CRASHES = 5  # times an alert may make a sink raise unexpectedly before it is parked


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
        self._retry_after = dict.fromkeys(self._wakeups, 0.0)  # seconds the sink asked for
        self._refusing = dict.fromkeys(self._wakeups, False)
        # Alerts a sink accepted whose delivery the state file has not recorded yet (it was
        # locked or full): the retry records them instead of sending them again.
        self._unrecorded: dict[str, set[int]] = {name: set() for name in self._wakeups}
        # Crashes per (sink, alert id), apart from ordinary failed attempts: an alert that
        # waited out a long outage still gets its few tries against a sink bug.
        self._crashes: dict[tuple[str, int], int] = {}

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
        """Try once to deliver everything pending, every sink at once (a slow chat must not use
        up the others' time); call after ``run`` has stopped."""
        results = await asyncio.gather(
            *(self._drain(sink) for sink in self._sinks), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]  # every sink had its try; the caller hears of the first failure

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
                delay = self._backoff.delay(failures)
                await asyncio.sleep(max(delay, self._retry_after[sink.name]))
            else:
                await wakeup.wait()
            wakeup.clear()
            try:
                await self._drain(sink)
            except StoreError as err:
                log.error("outbox_failed", sink=sink.name, error=str(err))
                self._failures[sink.name] += 1
            except Exception:  # the loop edge: delivery to this sink must go on
                log.exception("outbox_crashed", sink=sink.name)
                self._failures[sink.name] += 1

    async def _drain(self, sink: Sink) -> None:
        """Deliver pending alerts in order until none are left or a group fails retryably.

        Alerts of one poll of one account go to the sink together, so it can send them as one
        message; a mute in force for the sink records matching alerts instead of sending them.
        """
        name = sink.name
        while batch := self._store.pending(name, BATCH):
            mutes = self._store.mutes(name, self._clock())
            for group in _poll_groups(batch):
                unsent = self._record_unrecorded(name, group)
                unmuted = self._hold_muted(name, unsent, mutes)
                if unmuted and not await self._deliver(sink, unmuted):
                    return
        if self._failures[name]:
            log.info("delivery_recovered", sink=name, failed_attempts=self._failures[name])
            self._failures[name] = 0
            self._retry_after[name] = 0.0
        self.update_depth()

    def _hold_muted(
        self, name: str, group: list[PendingAlert], mutes: Mapping[str, datetime]
    ) -> list[PendingAlert]:
        """Record the muted alerts of ``group``; return the ones to send."""
        if not mutes:
            return group
        send = []
        for item in group:
            target = next((t for t in mute_targets(item.alert) if t in mutes), None)
            if target is None:
                send.append(item)
                continue
            reason = f"muted: {target.replace(':', ' ', 1)} until {mutes[target].isoformat()}"
            self._store.mark_muted([item.id], name, reason, self._clock())
            self._metrics.deliveries.labels(name, "muted").inc()
        return send

    async def _deliver(self, sink: Sink, group: list[PendingAlert]) -> bool:
        """Send one group; False when the sink must back off before the next.

        A permanent failure parks only the alert it stopped at; the rest of the group is
        offered again at once, so one bad alert never takes its neighbours with it. A sink bug
        is charged to the alert it met, which is parked after MAX_CRASHES of them.
        """
        name = sink.name
        while group:
            # An alert that made the sink crash goes alone: its next crash is its own.
            sending = group[:1] if (name, group[0].id) in self._crashes else group
            try:
                await sink.send([item.alert for item in sending])
            except DeliveryFailed as err:
                failure = err
            except Exception as err:
                if len(sending) == 1:
                    failure = sink_bug(err, 0)
                    failure.__cause__ = err  # its traceback is logged with it
                else:
                    # A bug that does not say which alert it met: offer them one at a time.
                    ids = [item.id for item in sending]
                    log.exception("delivery_crashed", sink=name, alert_ids=ids)
                    self._metrics.deliveries.labels(name, str(Reason.SINK_ERROR)).inc()
                    for item in group:
                        if not await self._deliver(sink, [item]):
                            return False
                    return True
            else:
                self._delivered(name, sending)
                group = group[len(sending) :]
                continue
            self._delivered(name, group[: failure.delivered])
            group = group[failure.delivered :]
            self._metrics.deliveries.labels(name, str(failure.reason)).inc()
            failed = group
            if failure.reason is Reason.SINK_ERROR and group:
                failure = self._crashed(name, group[0], failure)
                failed = group[:1]  # the alerts behind it did not fail, they wait
            if failure.retryable:
                for item in failed:
                    self._store.mark_attempt_failed(item.id, name, str(failure))
                if not self._failures[name]:
                    log.warning("delivery_failing", sink=name, reason=str(failure))
                self._failures[name] += 1
                self._retry_after[name] = failure.retry_after or 0.0
                self.update_depth()
                return False
            refused, group = group[0], group[1:]
            self._store.mark_undeliverable(refused.id, name, str(failure), self._clock())
            self._crashes.pop((name, refused.id), None)
            self._metrics.undeliverable.labels(name).inc()
            if not self._refusing[name]:
                # Once per sink until it delivers again: a blocked chat must not flood the log.
                log.error("delivery_refused", sink=name, alert_id=refused.id, reason=str(failure))
            self._refusing[name] = True
        return True

    def _crashed(self, name: str, item: PendingAlert, bug: DeliveryFailed) -> DeliveryFailed:
        """Count a sink bug against the alert it met: retried a few times, then parked."""
        log.error("delivery_crashed", sink=name, alert_id=item.id, exc_info=bug)
        crashes = self._crashes.get((name, item.id), 0) + 1
        self._crashes[(name, item.id)] = crashes
        return DeliveryFailed(Reason.SINK_ERROR, bug.detail, retryable=crashes < MAX_CRASHES)

    def _record_unrecorded(self, name: str, group: list[PendingAlert]) -> list[PendingAlert]:
        """Record the alerts the sink already took; return the ones still to send."""
        unrecorded = self._unrecorded[name]
        taken = {item.id for item in group if item.id in unrecorded}
        if taken:
            self._store.mark_delivered(sorted(taken), name, self._clock())
            unrecorded.difference_update(taken)
            self._metrics.deliveries.labels(name, "delivered").inc(len(taken))
        return [item for item in group if item.id not in taken]

    def _delivered(self, name: str, items: Sequence[PendingAlert]) -> None:
        """Record that the sink took ``items``; a StoreError leaves them to record next time."""
        if not items:
            return
        ids = [item.id for item in items]
        self._unrecorded[name].update(ids)
        self._store.mark_delivered(ids, name, self._clock())
        self._unrecorded[name].difference_update(ids)
        if self._crashes:
            for alert_id in ids:
                self._crashes.pop((name, alert_id), None)
        self._metrics.deliveries.labels(name, "delivered").inc(len(items))
        self._refusing[name] = False


def mute_targets(alert: Alert) -> tuple[str, str]:
    """The mute targets an alert falls under: its rule and its account."""
    return f"rule:{alert.rule}", f"account:{alert.account}"


def _poll_groups(batch: Sequence[PendingAlert]) -> list[list[PendingAlert]]:
    """Split the outbox order into runs of alerts from the same poll (account and time)."""
    groups: list[list[PendingAlert]] = []
    for item in batch:
        head = groups[-1][0].alert if groups else None
        if head is not None and (head.account, head.at) == (item.alert.account, item.alert.at):
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups
