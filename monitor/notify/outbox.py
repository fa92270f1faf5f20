"""Delivers the store's outbox to every sink: in order, with retries, one lane per sink.

Written once for all sinks: a sink only says whether a failure is retryable, and the retry
policy says how long to wait or when to give up. A retryable failure keeps the alert at the head
of that sink's lane and backs off, so order is kept and a broken sink never delays the others. A
permanent failure parks the alert as undeliverable, logged once, and the lane moves on. Alerts
of one poll are handed over together; a sink that delivered part of a group says how many, and
only the rest is retried. A sink's bug is charged to the alert it met, never to its neighbours.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime

import structlog

from monitor.backoff import Backoff
from monitor.metrics import Metrics
from monitor.model import Alert
from monitor.notify.base import DeliveryFailed, Reason, Sink, sink_bug
from monitor.notify.retry import RetryPolicy
from monitor.store import PendingAlert, StoreError
from monitor.store_thread import StoreThread

log = structlog.get_logger(__name__)

BATCH = 100
# How long removing a sink (a reload) lets a group in flight finish and be recorded.
REMOVE_GRACE_SECONDS = 5.0


class Dispatcher:
    """Owns one lane per sink; ``wake()`` after committing new alerts."""

    def __init__(
        self,
        store: StoreThread,
        sinks: Sequence[Sink],
        metrics: Metrics,
        *,
        backoff: Backoff | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._retry = RetryPolicy(backoff)
        self._clock = clock
        self._lanes: dict[str, Lane] = {}
        self._serving: dict[str, asyncio.Task[None]] = {}
        self._running = False
        for sink in sinks:
            self.add_sink(sink)

    @property
    def sinks(self) -> list[Sink]:
        """The sinks delivered to, in the order added."""
        return [lane.sink for lane in self._lanes.values()]

    def add_sink(self, sink: Sink) -> None:
        """Deliver to ``sink`` too, starting with what its outbox already holds."""
        lane = Lane(sink, self._store, self._metrics, self._retry, self._clock, self.update_depth)
        self._lanes[sink.name] = lane
        self._metrics.track_sink(sink.name)
        if self._running:
            self._serve(lane)
            lane.wakeup.set()

    async def remove_sink(self, name: str, grace: float = REMOVE_GRACE_SECONDS) -> Sink:
        """Stop delivering to the sink ``name``; return it, for the caller to close or park its
        outbox. A group in flight may finish and be recorded within ``grace`` seconds, so the
        alerts a destination already took are not sent again; past it, it is cancelled and
        stays pending."""
        lane = self._lanes.pop(name)
        task = self._serving.pop(name, None)
        if task is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await lane.sending.acquire()  # never released: the lane is done
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return lane.sink

    def wake(self) -> None:
        """New alerts are committed: every sink looks at the outbox now."""
        for lane in self._lanes.values():
            lane.wakeup.set()

    async def run(self, grace: float = REMOVE_GRACE_SECONDS) -> None:
        """Deliver until cancelled. Anything left in the outbox at start is sent first.

        Cancelled, each lane's group in flight may finish and be recorded within ``grace``
        seconds (a second cancel cuts it short), so a ``flush`` after it does not hand the
        destination the same alerts again."""
        self._running = True
        for lane in self._lanes.values():
            self._serve(lane)
        self.wake()
        try:
            await asyncio.Future()  # the lanes run as tasks of their own until cancelled
        finally:
            self._running = False
            serving = dict(self._serving)
            self._serving.clear()
            try:
                async with asyncio.timeout(grace):
                    await asyncio.gather(
                        *(_settle(self._lanes[name], task) for name, task in serving.items())
                    )
            finally:
                for task in serving.values():
                    task.cancel()
                await asyncio.gather(*serving.values(), return_exceptions=True)

    def _serve(self, lane: Lane) -> None:
        task = asyncio.create_task(lane.serve(), name=f"sink-{lane.sink.name}")
        self._serving[lane.sink.name] = task

    async def flush(self) -> None:
        """Try once to deliver everything pending, every sink at once (a slow chat must not use
        up the others' time); call after ``run`` has stopped."""
        results = await asyncio.gather(
            *(lane.drain() for lane in self._lanes.values()), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]  # every sink had its try; the caller hears of the first failure

    async def update_depth(self) -> None:
        """Refresh the outbox depth gauge of every sink from the store."""
        depth = await self._store.outbox_depth()
        for name in self._lanes:  # the lanes as they are once the store answered
            self._metrics.outbox_depth.labels(name).set(depth.get(name, 0))


class Lane:
    """One sink's way through the outbox: its wakeup, its run of failed attempts and what it
    remembers of its alerts between attempts. Only one task drives a lane at a time."""

    def __init__(
        self,
        sink: Sink,
        store: StoreThread,
        metrics: Metrics,
        retry: RetryPolicy,
        clock: Callable[[], datetime],
        depth_changed: Callable[[], Awaitable[None]],
    ) -> None:
        self.sink = sink
        self.wakeup = asyncio.Event()
        self.sending = asyncio.Lock()  # held while a group is sent and its outcome recorded
        self._store = store
        self._metrics = metrics
        self._retry = retry
        self._clock = clock
        self._depth_changed = depth_changed
        self._failures = 0  # failed attempts in a row
        self._retry_after = 0.0  # seconds the sink asked for
        self._refusing = False  # a refusal is logged; the next one is not, until a delivery
        # Alerts the sink accepted whose delivery the state file has not recorded yet (it was
        # locked or full): the retry records them instead of sending them again.
        self._unrecorded: set[int] = set()
        self._crashes: dict[int, int] = {}  # alert id -> sink bugs it met

    async def serve(self) -> None:
        """Drain whenever woken, or after the backoff while failing, until cancelled."""
        while True:
            if self._failures:
                # Backing off: new alerts queue behind the one that failed, so do not wake early.
                await asyncio.sleep(self._retry.wait(self._failures, self._retry_after))
            else:
                await self.wakeup.wait()
            self.wakeup.clear()
            try:
                await self.drain()
            except StoreError as err:
                log.error("outbox_failed", sink=self.sink.name, error=str(err))
                self._failures += 1
            except Exception:  # the loop edge: delivery to this sink must go on
                log.exception("outbox_crashed", sink=self.sink.name)
                self._failures += 1

    async def drain(self) -> None:
        """Deliver pending alerts in order until none are left or a group fails retryably.

        Alerts of one poll of one account go to the sink together, so it can send them as one
        message; a mute in force for the sink records matching alerts instead of sending them.
        """
        name = self.sink.name
        while batch := await self._store.pending(name, BATCH):
            mutes = await self._store.mutes(name, self._clock())
            for group in _poll_groups(batch):
                unsent = await self._record_unrecorded(group)
                unmuted = await self._hold_muted(unsent, mutes)
                if not unmuted:
                    continue
                async with self.sending:
                    if not await self._deliver(unmuted):
                        return
        if self._failures:
            log.info("delivery_recovered", sink=name, failed_attempts=self._failures)
            self._failures = 0
            self._retry_after = 0.0
        await self._depth_changed()

    async def _hold_muted(
        self, group: list[PendingAlert], mutes: Mapping[str, datetime]
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
            await self._store.mark_muted([item.id], self.sink.name, reason, self._clock())
            self._metrics.deliveries.labels(self.sink.name, "muted").inc()
        return send

    async def _deliver(self, group: list[PendingAlert]) -> bool:
        """Send one group; False when the sink must back off before the next.

        A permanent failure parks only the alert it stopped at; the rest of the group is
        offered again at once, so one bad alert never takes its neighbours with it. A sink bug
        is charged to the alert it met, which the retry policy parks after a few of them.
        """
        name = self.sink.name
        while group:
            # An alert that made the sink crash goes alone: its next crash is its own.
            sending = group[:1] if group[0].id in self._crashes else group
            try:
                await self.sink.send([item.alert for item in sending])
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
                        if not await self._deliver([item]):
                            return False
                    return True
            else:
                await self._delivered(sending)
                group = group[len(sending) :]
                continue
            await self._delivered(group[: failure.delivered])
            group = group[failure.delivered :]
            self._metrics.deliveries.labels(name, str(failure.reason)).inc()
            failed, crashes = group, 0
            if failure.reason is Reason.SINK_ERROR and group:
                crashes = self._crashed(group[0], failure)
                failed = group[:1]  # the alerts behind it did not fail, they wait
            if not self._retry.gives_up(failure, crashes):
                for item in failed:
                    await self._store.mark_attempt_failed(item.id, name, str(failure))
                if not self._failures:
                    log.warning("delivery_failing", sink=name, reason=str(failure))
                self._failures += 1
                self._retry_after = failure.retry_after or 0.0
                await self._depth_changed()
                return False
            refused, group = group[0], group[1:]
            await self._store.mark_undeliverable(refused.id, name, str(failure), self._clock())
            self._crashes.pop(refused.id, None)
            self._metrics.undeliverable.labels(name).inc()
            if not self._refusing:
                # Once per sink until it delivers again: a blocked chat must not flood the log.
                log.error("delivery_refused", sink=name, alert_id=refused.id, reason=str(failure))
            self._refusing = True
        return True

    def _crashed(self, item: PendingAlert, bug: DeliveryFailed) -> int:
        """Count a sink bug against the alert it met; the number it has met so far."""
        log.error("delivery_crashed", sink=self.sink.name, alert_id=item.id, exc_info=bug)
        self._crashes[item.id] = self._crashes.get(item.id, 0) + 1
        return self._crashes[item.id]

    async def _record_unrecorded(self, group: list[PendingAlert]) -> list[PendingAlert]:
        """Record the alerts the sink already took; return the ones still to send."""
        taken = {item.id for item in group if item.id in self._unrecorded}
        if taken:
            await self._store.mark_delivered(sorted(taken), self.sink.name, self._clock())
            self._unrecorded.difference_update(taken)
            self._metrics.deliveries.labels(self.sink.name, "delivered").inc(len(taken))
        return [item for item in group if item.id not in taken]

    async def _delivered(self, items: Sequence[PendingAlert]) -> None:
        """Record that the sink took ``items``; a StoreError leaves them to record next time."""
        if not items:
            return
        ids = [item.id for item in items]
        self._unrecorded.update(ids)
        await self._store.mark_delivered(ids, self.sink.name, self._clock())
        self._unrecorded.difference_update(ids)
        for alert_id in ids:
            self._crashes.pop(alert_id, None)
        self._metrics.deliveries.labels(self.sink.name, "delivered").inc(len(items))
        self._refusing = False


async def _settle(lane: Lane, task: asyncio.Task[None]) -> None:
    """End ``lane``'s task once no group is in flight: one being sent finishes and is
    recorded first."""
    async with lane.sending:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


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
