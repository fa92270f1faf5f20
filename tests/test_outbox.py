"""The outbox dispatcher against a real SQLite store and a sink that fails on request."""

from __future__ import annotations

import asyncio
import io
import sqlite3
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.backoff import Backoff
from monitor.metrics import Metrics
from monitor.model import Alert, Severity, Snapshot
from monitor.notify.base import DeliveryFailed, Reason, sink_bug
from monitor.notify.console.sink import ConsoleSink
from monitor.notify.outbox import Dispatcher
from monitor.notify.retry import MAX_CRASHES, MAX_RETRY_AFTER, RetryPolicy
from monitor.store import Store, StoreError
from monitor.store_thread import StoreThread

DAY = date(2026, 11, 23)

AT = datetime(2026, 11, 23, 9, 20, tzinfo=UTC)


class FlakySink:
    """A sink that records deliveries and fails while told to."""

    def __init__(self, name: str) -> None:
        self._name = name
        self.delivered: list[str] = []
        self.attempts = 0
        self.fail_with: Exception | None = None
        self.fail_once_on: set[str] = set()
        self.groups: list[list[str]] = []

    @property
    def name(self) -> str:
        return self._name

    async def send(self, alerts: Sequence[Alert]) -> None:
        self.attempts += 1
        self.groups.append([a.message for a in alerts])
        for done, alert in enumerate(alerts):
            if alert.message in self.fail_once_on:
                self.fail_once_on.discard(alert.message)
                raise DeliveryFailed(
                    Reason.CLIENT_ERROR, "chat not found", retryable=False, delivered=done
                )
            if self.fail_with is not None:
                raise self.fail_with
            self.delivered.append(alert.message)

    async def close(self) -> None:
        pass


def alert(message: str) -> Alert:
    return Alert("r", "new_short", Severity.WARNING, "acct", None, None, AT, message, {})


def commit(store: Store, messages: list[str], sinks: list[str]) -> None:
    snapshot = Snapshot("acct", "simulator", AT, {})
    store.commit_poll(snapshot, DAY, [], {}, [(alert(m), sinks) for m in messages])


def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


async def test_delivers_in_order_and_empties_the_outbox(tmp_path: Path) -> None:
    """Every pending alert reaches the sink once, oldest first, and leaves the outbox."""
    store = Store(tmp_path / "s.db")
    commit(store, ["a", "b", "c"], ["one"])
    sink = FlakySink("one")
    await Dispatcher(StoreThread(store), [sink], metrics()).flush()
    assert sink.delivered == ["a", "b", "c"]
    assert store.outbox_depth() == {}
    await Dispatcher(StoreThread(store), [sink], metrics()).flush()
    assert sink.delivered == ["a", "b", "c"]


async def test_retryable_failure_keeps_order_and_isolates_other_sinks(tmp_path: Path) -> None:
    """A failing sink backs off holding its queue; the healthy sink is not delayed."""
    store = Store(tmp_path / "s.db")
    commit(store, ["a", "b"], ["down", "up"])
    down, up = FlakySink("down"), FlakySink("up")
    down.fail_with = DeliveryFailed(Reason.SERVER_ERROR, "HTTP 502", retryable=True)
    m = metrics()
    thread = StoreThread(store)
    dispatcher = Dispatcher(thread, [down, up], m, backoff=Backoff(initial=0.01, cap=0.05))
    task = asyncio.create_task(dispatcher.run())
    try:
        async with asyncio.timeout(60):
            while up.delivered != ["a", "b"] or down.attempts < 3:
                await asyncio.sleep(0.01)
        assert down.delivered == []
        # Read on the store's thread: after the marks the lanes queued before it.
        assert await thread.outbox_depth() == {"down": 2}
        down.fail_with = None
        commit(store, ["c"], ["down", "up"])
        dispatcher.wake()
        async with asyncio.timeout(60):
            while down.delivered != ["a", "b", "c"] or up.delivered != ["a", "b", "c"]:
                await asyncio.sleep(0.01)
        assert await thread.outbox_depth() == {}
    finally:
        task.cancel()
    failed = m.registry.get_sample_value(
        "position_monitor_notifications_total", {"sink": "down", "result": "server_error"}
    )
    assert failed is not None and failed >= 3


async def test_permanent_failure_parks_the_alert_and_moves_on(tmp_path: Path) -> None:
    """A non-retryable failure is recorded as undeliverable and the next alert goes out."""
    store = Store(tmp_path / "s.db")
    commit(store, ["a", "b"], ["one"])
    sink = FlakySink("one")
    sink.fail_once_on = {"a"}
    m = metrics()
    await Dispatcher(StoreThread(store), [sink], m).flush()
    assert sink.delivered == ["b"]
    assert store.pending("one") == []
    parked = m.registry.get_sample_value(
        "position_monitor_undeliverable_alerts_total", {"sink": "one"}
    )
    assert parked == 1
    await Dispatcher(StoreThread(store), [sink], metrics()).flush()
    assert sink.delivered == ["b"], "a parked alert is not retried"


async def test_a_sink_bug_backs_off_instead_of_stopping_delivery(tmp_path: Path) -> None:
    """A sink raising something unexpected is retried later, not silenced for good."""
    store = Store(tmp_path / "s.db")
    commit(store, ["a"], ["buggy"])
    sink = FlakySink("buggy")
    sink.fail_with = RuntimeError("bug in a sink")
    thread = StoreThread(store)
    dispatcher = Dispatcher(thread, [sink], metrics(), backoff=Backoff(initial=0.01, cap=0.02))
    task = asyncio.create_task(dispatcher.run())
    try:
        async with asyncio.timeout(60):
            while sink.attempts < 2:
                await asyncio.sleep(0.01)
        sink.fail_with = None
        async with asyncio.timeout(60):
            while sink.delivered != ["a"]:
                await asyncio.sleep(0.01)
        assert not task.done()
        assert await thread.outbox_depth() == {}  # after the lane's mark, on the same thread
    finally:
        task.cancel()


async def test_an_alert_that_keeps_crashing_a_sink_is_parked(tmp_path: Path) -> None:
    """A sink that raises on one alert every time: parked after a few tries, the rest go out."""
    store = Store(tmp_path / "s.db")
    commit(store, ["poison", "b"], ["buggy"])

    class PoisonedSink(FlakySink):
        poisoned = 0

        async def send(self, alerts: Sequence[Alert]) -> None:
            if any(alert.message == "poison" for alert in alerts):
                self.poisoned += 1
                raise ValueError("cannot format this alert")
            await super().send(alerts)

    sink = PoisonedSink("buggy")
    thread = StoreThread(store)
    dispatcher = Dispatcher(thread, [sink], metrics(), backoff=Backoff(initial=0.001, cap=0.002))
    task = asyncio.create_task(dispatcher.run())
    try:
        async with asyncio.timeout(60):
            while sink.delivered != ["b"]:
                await asyncio.sleep(0.01)
        assert await thread.outbox_depth() == {}  # after the lane's mark, on the same thread
    finally:
        task.cancel()
    # Once with its neighbour (which crash was whose is not known), then MAX_CRASHES alone.
    assert sink.poisoned == 1 + MAX_CRASHES
    assert outcomes(tmp_path / "s.db") == {
        "poison": ("failed", "sink_error: ValueError('cannot format this alert')"),
        "b": ("delivered", None),
    }


def outcomes(path: Path) -> dict[str, tuple[str, str | None]]:
    """Each alert's message -> how its delivery ended and the error it was parked with."""
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT json_extract(payload, '$.message'), delivered_at, failed_at, last_error"
            " FROM alerts JOIN deliveries ON alert_id = id"
        ).fetchall()
    return {
        message: ("delivered" if delivered else "failed" if failed else "pending", error)
        for message, delivered, failed, error in rows
    }


async def drain_until_empty(store: Store, dispatcher: Dispatcher, sink: str) -> None:
    """Run the dispatcher until the sink's outbox is empty."""
    task = asyncio.create_task(dispatcher.run())
    try:
        async with asyncio.timeout(10):
            while store.pending(sink):
                await asyncio.sleep(0.01)
    finally:
        task.cancel()


async def test_a_sink_bug_is_charged_to_the_alert_it_met(tmp_path: Path) -> None:
    """One poll's alerts a, poison, c; the sink sends a, then a bug meets poison: a is
    recorded as sent once, poison alone is retried and parked with its own error, c goes out."""
    store = Store(tmp_path / "s.db")
    commit(store, ["a", "poison", "c"], ["buggy"])

    class BugOnPoison(FlakySink):
        async def send(self, alerts: Sequence[Alert]) -> None:
            self.attempts += 1
            for done, alert in enumerate(alerts):
                if alert.message == "poison":
                    raise sink_bug(ValueError("cannot format this alert"), done)
                self.delivered.append(alert.message)

    sink = BugOnPoison("buggy")
    m = metrics()
    dispatcher = Dispatcher(
        StoreThread(store), [sink], m, backoff=Backoff(initial=0.001, cap=0.002)
    )
    await drain_until_empty(store, dispatcher, "buggy")
    assert sink.delivered == ["a", "c"]
    assert sink.attempts == MAX_CRASHES + 1  # the group, then poison alone, then c alone
    assert outcomes(tmp_path / "s.db") == {
        "a": ("delivered", None),
        "poison": ("failed", "sink_error: ValueError('cannot format this alert')"),
        "c": ("delivered", None),
    }
    crashes = m.registry.get_sample_value(
        "position_monitor_notifications_total", {"sink": "buggy", "result": "sink_error"}
    )
    assert crashes == MAX_CRASHES


@pytest.mark.parametrize("output_format", ["text", "json"])
async def test_an_alert_the_console_cannot_print_does_not_repeat_its_neighbours(
    tmp_path: Path, output_format: str
) -> None:
    """Standard output that only takes ASCII and an alert with a rupee sign: its neighbours are
    printed once each, and it is parked with the encoding error."""
    store = Store(tmp_path / "s.db")
    commit(store, ["a", "loss ₹5,000", "c"], ["console"])
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii", write_through=True)
    sink = ConsoleSink("console", output_format, stream)
    dispatcher = Dispatcher(
        StoreThread(store), [sink], metrics(), backoff=Backoff(initial=0.001, cap=0.002)
    )
    await drain_until_empty(store, dispatcher, "console")
    printed = raw.getvalue().decode("ascii").splitlines()
    assert len(printed) == 2
    assert ("a" in printed[0], "c" in printed[1]) == (True, True)
    outcome = outcomes(tmp_path / "s.db")
    assert (outcome["a"], outcome["c"]) == (("delivered", None), ("delivered", None))
    assert outcome["loss ₹5,000"][0] == "failed"
    assert "UnicodeEncodeError" in (outcome["loss ₹5,000"][1] or "")


async def test_an_alert_the_sink_took_is_not_sent_again_when_recording_it_failed(
    tmp_path: Path,
) -> None:
    """The sink accepted "a" (with "b", its poll's neighbour), then the state file was locked
    and refused to record them: the retry records them without sending them again."""
    path = tmp_path / "s.db"
    store = Store(path)
    store._db.execute("PRAGMA busy_timeout = 50")
    commit(store, ["a", "b"], ["one"])
    other = sqlite3.connect(path, isolation_level=None)

    class LockedAfterA(FlakySink):
        async def send(self, alerts: Sequence[Alert]) -> None:
            await super().send(alerts)
            if any(alert.message == "a" for alert in alerts):
                other.execute("BEGIN IMMEDIATE")  # e.g. a backup starts right now

    sink = LockedAfterA("one")
    registry = metrics()
    dispatcher = Dispatcher(StoreThread(store), [sink], registry)
    with pytest.raises(StoreError, match="database is locked"):
        await dispatcher.flush()
    other.execute("ROLLBACK")
    other.close()
    await dispatcher.flush()
    assert sink.delivered == ["a", "b"]
    assert store.outbox_depth() == {}
    delivered = registry.registry.get_sample_value(
        "position_monitor_notifications_total", {"sink": "one", "result": "delivered"}
    )
    assert delivered == 2


def test_an_unreadable_outbox_row_is_parked_not_fatal(tmp_path: Path) -> None:
    """A payload no release could have written is set aside; the queue behind it moves."""
    store = Store(tmp_path / "s.db")
    commit(store, ["a", "b"], ["one"])
    with sqlite3.connect(tmp_path / "s.db") as db:
        db.execute("UPDATE alerts SET payload = '[1, 2]' WHERE id = 1")
    assert [p.alert.message for p in store.pending("one")] == ["b"]
    assert store.outbox_depth() == {"one": 1}


def test_backoff_is_capped_exponential_with_jitter() -> None:
    """Delays double from the initial value, stay within [half, full] of it, never pass the cap."""
    backoff = Backoff(initial=1.0, cap=8.0)
    for failures, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 8.0)]:
        delays = [backoff.delay(failures) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 10, "jittered"


def test_the_retry_policy_honours_the_wait_asked_for_and_parks_refusals_and_repeated_bugs() -> None:
    """A wait the destination asked for beats a shorter backoff; a refusal is parked at once,
    an outage never, a sink bug at its MAX_CRASHES-th time."""
    policy = RetryPolicy(Backoff(initial=1.0, cap=8.0))
    assert policy.wait(1, 30.0) == 30.0
    assert 4.0 <= policy.wait(4, 0.0) <= 8.0
    refused = DeliveryFailed(Reason.CLIENT_ERROR, "chat not found", retryable=False)
    outage = DeliveryFailed(Reason.SERVER_ERROR, "HTTP 502", retryable=True)
    assert policy.gives_up(refused, 0)
    assert not policy.gives_up(outage, 0)
    bug = sink_bug(ValueError("cannot format this alert"), 0)
    parked = [policy.gives_up(bug, crashes) for crashes in range(1, MAX_CRASHES + 1)]
    assert parked == [False] * (MAX_CRASHES - 1) + [True]


def test_a_wait_asked_for_is_honoured_up_to_an_hour_whichever_sink_asked() -> None:
    """A Retry-After of days (a proxy's mistake, an Alertmanager's 503) would hold the lane and
    every alert behind it; the policy caps it for every sink, as the webhook always did."""
    policy = RetryPolicy(Backoff(initial=1.0, cap=8.0))
    assert policy.wait(1, 10.0**9) == MAX_RETRY_AFTER == 3600.0
    assert policy.wait(1, 3599.0) == 3599.0


def test_decimal_details_survive_the_outbox(tmp_path: Path) -> None:
    """An alert read back from the outbox equals the one committed (money stays exact)."""
    store = Store(tmp_path / "s.db")
    original = Alert(
        "dd", "mtm_drawdown", Severity.CRITICAL, "acct", None, None, AT, "m",
        {"mtm": Decimal("-5000.5"), "peak": Decimal("100"), "drawdown": Decimal("5100.5")},
    )  # fmt: skip
    store.commit_poll(Snapshot("acct", "simulator", AT, {}), DAY, [], {}, [(original, ["one"])])
    (pending,) = store.pending("one")
    assert pending.alert == original


async def test_a_long_outage_does_not_use_up_the_tries_against_a_sink_bug(tmp_path: Path) -> None:
    """Failed attempts of an outage are not crashes: after twenty of them, an alert that
    crashes the sink still gets its MAX_CRASHES tries before it is parked."""
    store = Store(tmp_path / "s.db")
    commit(store, ["a"], ["buggy"])
    sink = FlakySink("buggy")
    sink.fail_with = DeliveryFailed(Reason.TRANSPORT_ERROR, "connection refused", retryable=True)
    dispatcher = Dispatcher(
        StoreThread(store), [sink], metrics(), backoff=Backoff(initial=0.001, cap=0.002)
    )
    task = asyncio.create_task(dispatcher.run())
    try:
        async with asyncio.timeout(60):
            while sink.attempts < 20:
                await asyncio.sleep(0.001)
        outage = sink.attempts
        sink.fail_with = ValueError("cannot format this alert")
        async with asyncio.timeout(60):
            while store.pending("buggy"):
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert sink.attempts - outage == MAX_CRASHES
    assert sink.delivered == []


async def test_a_sink_removed_mid_delivery_records_what_it_took_instead_of_resending_it(
    tmp_path: Path,
) -> None:
    """A reload removes a sink while it is sending: the send finishes and is recorded, so the
    sink built in its place does not send the same alerts again."""
    store = Store(tmp_path / "s.db")
    commit(store, ["a"], ["one"])
    entered, release = asyncio.Event(), asyncio.Event()

    class Slow(FlakySink):
        async def send(self, alerts: Sequence[Alert]) -> None:
            entered.set()
            await release.wait()
            await super().send(alerts)

    thread = StoreThread(store)
    dispatcher = Dispatcher(thread, [Slow("one")], metrics())
    running = asyncio.create_task(dispatcher.run())
    await asyncio.wait_for(entered.wait(), 60)
    removing = asyncio.create_task(dispatcher.remove_sink("one"))
    await asyncio.sleep(0)  # removal is under way while the send is still in flight
    assert not removing.done(), "the premise: removal waits for the send in flight"
    release.set()
    removed = await asyncio.wait_for(removing, 60)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    assert isinstance(removed, Slow) and removed.delivered == ["a"]
    assert await thread.outbox_depth() == {}, "recorded as delivered: nothing to send again"


async def test_stopping_lets_a_send_in_flight_finish_so_the_flush_does_not_send_it_again(
    tmp_path: Path,
) -> None:
    """Shutdown stops the lanes, then flushes: a group the sink was sending is let finish and
    recorded, rather than cut off and handed to the destination a second time by the flush."""
    store = Store(tmp_path / "s.db")
    commit(store, ["a"], ["one"])
    entered, release = asyncio.Event(), asyncio.Event()
    taken: list[str] = []  # what reached the destination, answered or not

    class Slow(FlakySink):
        async def send(self, alerts: Sequence[Alert]) -> None:
            taken.extend(a.message for a in alerts)
            entered.set()
            await release.wait()
            await super().send(alerts)

    thread = StoreThread(store)
    dispatcher = Dispatcher(thread, [Slow("one")], metrics())
    running = asyncio.create_task(dispatcher.run())
    await asyncio.wait_for(entered.wait(), 60)
    running.cancel()  # as the daemon's stop() does, then it flushes
    await asyncio.sleep(0)
    release.set()
    await asyncio.wait_for(asyncio.gather(running, return_exceptions=True), 60)
    await asyncio.wait_for(dispatcher.flush(), 60)
    assert taken == ["a"]
    assert await thread.outbox_depth() == {}
