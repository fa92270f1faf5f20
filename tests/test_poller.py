"""One account's poll: failures never alert, are counted every time and logged on transitions."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from monitor.brokers.errors import BadResponse, BrokerError, BrokerUnavailable, RateLimited
from monitor.config import AccountConfig, SinkConfig
from monitor.engine import LiveEngine
from monitor.logs import Redactor
from monitor.metrics import Metrics
from monitor.model import Severity, Snapshot
from monitor.poller import AccountPoller
from monitor.rules.base import PositionFilter
from monitor.rules.squared_off import SquaredOff
from monitor.schedule import PRESETS
from monitor.store import Store
from monitor.store_thread import StoreThread
from tests.snapshots import ACCOUNT, IST, T0, pos, snap


class ScriptedBroker:
    """A broker that answers each poll with the next scripted snapshot or error."""

    def __init__(self, script: list[Snapshot | BrokerError]) -> None:
        self._script: Iterator[Snapshot | BrokerError] = iter(script)

    async def fetch(self) -> Snapshot:
        outcome = next(self._script)
        if isinstance(outcome, BrokerError):
            raise outcome
        return outcome

    async def close(self) -> None:
        pass


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def poller(
    tmp_path: Path, metrics: Metrics, broker: ScriptedBroker, clock: Clock | None = None
) -> AccountPoller:
    account = AccountConfig(ACCOUNT, "kotak_neo", timedelta(seconds=5), IST)
    rule = SquaredOff("closed", Severity.INFO, PositionFilter())
    engine = LiveEngine(
        StoreThread(Store(tmp_path / "state.db")), [rule], [SinkConfig("console", "console")]
    )
    return AccountPoller(
        account, broker, engine, metrics, on_alerts=lambda: None, monotonic=clock or Clock()
    )


def polls(metrics: Metrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "position_monitor_polls_total", {"account": ACCOUNT, "outcome": outcome}
    )
    return value or 0.0


async def test_failures_between_good_polls_keep_the_baseline(
    tmp_path: Path, metrics: Metrics
) -> None:
    """500, timeout, malformed body: no alert, one warning, one recovery, the close fires once."""
    later = T0 + timedelta(seconds=25)
    script: list[Snapshot | BrokerError] = [
        snap(pos("1", 25), pos("2", 10)),
        BrokerUnavailable("kotak_neo", "HTTP 500: broker unavailable", status=500),
        BrokerUnavailable("kotak_neo", "transport error: timeout"),
        BadResponse("kotak_neo", "data[0].flBuyQty: Invalid decimal string"),
        snap(pos("1", 0), pos("2", 10), at=later),
        snap(pos("1", 0), pos("2", 10), at=later + timedelta(seconds=5)),
    ]
    clock = Clock()
    account = poller(tmp_path, metrics, ScriptedBroker(script), clock)
    with capture_logs() as logs:
        for _ in script:
            clock.now += 3600  # past any backoff: every scripted answer is fetched
            await account.poll()

    events = [(e["event"], e["log_level"]) for e in logs if e["event"].startswith("poll_")]
    assert events == [("poll_failed", "warning"), ("poll_failed", "debug"),
                      ("poll_failed", "debug"), ("poll_recovered", "info")]  # fmt: skip
    assert (
        polls(metrics, "ok"),
        polls(metrics, "unavailable"),
        polls(metrics, "bad_response"),
    ) == (3, 2, 1)
    store = Store(tmp_path / "state.db")
    [closed] = [a for a in store.alerts() if a.rule == "closed"]
    assert (closed.key, closed.at) == (pos("1").key, later)
    assert account.health.last_success == later + timedelta(seconds=5)


async def test_a_bug_in_a_broker_is_contained(tmp_path: Path, metrics: Metrics) -> None:
    """An unexpected exception is logged with its traceback, counted, and polling goes on."""

    class Broken(ScriptedBroker):
        calls = 0

        async def fetch(self) -> Snapshot:
            self.calls += 1
            if self.calls == 1:
                raise KeyError("oops")
            return snap(pos("1", 25))

    account = poller(tmp_path, metrics, Broken([]))
    with capture_logs() as logs:
        await account.poll()
        await account.poll()
    assert [e["event"] for e in logs][:2] == ["poll_crashed", "poll_failed"]
    assert "exc_info" in logs[0]
    assert (polls(metrics, "error"), polls(metrics, "ok")) == (1, 1)


async def test_outages_and_rate_limits_defer_the_next_polls(
    tmp_path: Path, metrics: Metrics
) -> None:
    """Retry-After is honoured exactly; an outage backs off; deferred polls fetch nothing."""
    script: list[Snapshot | BrokerError] = [
        RateLimited("kotak_neo", "HTTP 429: rate limited", status=429, retry_after=30),
        BrokerUnavailable("kotak_neo", "HTTP 503: broker unavailable", status=503),
        snap(pos("1", 25)),
    ]
    clock = Clock()
    account = poller(tmp_path, metrics, ScriptedBroker(script), clock)
    await account.poll()  # 429, Retry-After 30
    clock.now += 29.9
    await account.poll()
    assert polls(metrics, "deferred") == 1
    clock.now += 0.2
    await account.poll()  # 503, the second failure in a row: 5 to 10 s (twice the interval)
    clock.now += 4.9
    await account.poll()
    assert polls(metrics, "deferred") == 2
    clock.now += 5.2
    await account.poll()
    assert (
        polls(metrics, "rate_limited"),
        polls(metrics, "unavailable"),
        polls(metrics, "ok"),
    ) == (1, 1, 1)


class WallClock:
    """The account's wall clock, moved by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def windowed_poller(
    tmp_path: Path, metrics: Metrics, broker: ScriptedBroker, wall: WallClock, clock: Clock
) -> tuple[AccountPoller, Store]:
    account = AccountConfig(
        ACCOUNT, "kotak_neo", timedelta(seconds=5), IST, window=PRESETS["nse"],
        alert_after=timedelta(seconds=30),
    )  # fmt: skip
    store = Store(tmp_path / "state.db")
    engine = LiveEngine(StoreThread(store), [], [SinkConfig("console", "console")])
    poller = AccountPoller(
        account, broker, engine, metrics, on_alerts=lambda: None, monotonic=clock, clock=wall
    )
    return poller, store


async def test_no_polls_outside_the_window_but_one_right_after_it_closes(
    tmp_path: Path, metrics: Metrics
) -> None:
    """15:29 polls, 15:30 takes the end-of-day poll, 15:31 and the evening fetch nothing."""
    wall = WallClock(datetime(2026, 11, 23, 15, 29, tzinfo=IST))
    script: list[Snapshot | BrokerError] = [snap(pos("1", 25)), snap(pos("1", 0))]
    broker = ScriptedBroker(script)
    account, _ = windowed_poller(tmp_path, metrics, broker, wall, Clock())
    await account.poll()
    for minute in (30, 31, 45):
        wall.now = wall.now.replace(minute=minute)
        await account.poll()
    wall.now = wall.now.replace(hour=21)
    await account.poll()
    assert polls(metrics, "ok") == 2


async def test_poll_failing_fires_once_inside_the_window_then_recovers(
    tmp_path: Path, metrics: Metrics
) -> None:
    """30 s without a good poll inside the window: one critical alert; then one recovery."""
    start = datetime(2026, 11, 23, 10, 0, tzinfo=IST)
    wall = WallClock(start)
    outage = BrokerUnavailable("kotak_neo", "HTTP 503: broker unavailable", status=503)
    script: list[Snapshot | BrokerError] = [snap(pos("1", 25), at=start), *[outage] * 8]
    script.append(snap(pos("1", 25), at=start + timedelta(minutes=5)))
    clock = Clock()
    account, store = windowed_poller(tmp_path, metrics, ScriptedBroker(script), wall, clock)
    for step in range(len(script)):
        wall.now = start + timedelta(seconds=10 * step)
        clock.now += 3600  # past every backoff: each step is one fetch
        await account.poll()
    alerts = store.alerts()
    assert [(a.rule, a.severity.value) for a in alerts] == [
        ("poll_failing", "critical"),
        ("poll_recovered", "info"),
    ]
    failing = alerts[0]
    assert failing.at == start + timedelta(seconds=30)
    assert failing.details == {
        "failed_polls": 3,
        "last_success": start.isoformat(),
        "reason": "HTTP 503: broker unavailable",
    }
    assert failing.to_json()["exchange_segment"] is None


async def test_a_restart_during_an_outage_neither_repeats_poll_failing_nor_forgets_recovery(
    tmp_path: Path, metrics: Metrics
) -> None:
    """poll_failing raised, the daemon restarted while the broker is still down: no second
    poll_failing; when polls succeed again, poll_recovered follows as if nothing restarted."""
    start = datetime(2026, 11, 23, 10, 0, tzinfo=IST)
    wall = WallClock(start)
    outage = BrokerUnavailable("kotak_neo", "HTTP 503: broker unavailable", status=503)
    clock = Clock()
    script: list[Snapshot | BrokerError] = [snap(pos("1", 25), at=start), *[outage] * 4]
    first, store = windowed_poller(tmp_path, metrics, ScriptedBroker(script), wall, clock)
    for step in range(len(script)):
        wall.now = start + timedelta(seconds=10 * step)
        clock.now += 3600
        await first.poll()
    assert [a.rule for a in store.alerts()] == ["poll_failing"]
    store.close()

    later = start + timedelta(minutes=10)
    script = [*[outage] * 4, snap(pos("1", 25), at=later + timedelta(minutes=1))]
    second, store = windowed_poller(
        tmp_path, Metrics(CollectorRegistry()), ScriptedBroker(script), wall, clock
    )
    for step in range(len(script)):
        wall.now = later + timedelta(seconds=15 * step)
        clock.now += 3600
        await second.poll()
    assert [a.rule for a in store.alerts()] == ["poll_failing", "poll_recovered"]


async def test_a_poll_is_bounded_as_a_whole(tmp_path: Path, metrics: Metrics) -> None:
    """A broker whose requests each stay under the timeout but never finish: cut at the deadline."""

    class Stuck(ScriptedBroker):
        async def fetch(self) -> Snapshot:
            await asyncio.Event().wait()  # never set: only the poll's deadline ends this
            raise AssertionError("unreachable")

    account = AccountConfig(
        ACCOUNT, "kotak_neo", timedelta(seconds=5), IST, timeout=timedelta(milliseconds=100)
    )
    engine = LiveEngine(StoreThread(Store(tmp_path / "state.db")), [], [])
    poller = AccountPoller(account, Stuck([]), engine, metrics, on_alerts=lambda: None)
    with capture_logs() as logs:
        async with asyncio.timeout(60):  # generous: a poll without its deadline never ends
            await poller.poll()
    assert polls(metrics, "unavailable") == 1
    assert logs[-1]["reason"] == "poll took over 0.4s"


async def test_time_outside_the_window_does_not_count_towards_poll_failing(
    tmp_path: Path, metrics: Metrics
) -> None:
    """Started at night, one failure at the 09:15 open is not an outage; 30 s of them is."""
    wall = WallClock(datetime(2026, 11, 23, 2, 0, tzinfo=IST))
    outage = BrokerUnavailable("kotak_neo", "HTTP 503: broker unavailable", status=503)
    clock = Clock()
    account, store = windowed_poller(tmp_path, metrics, ScriptedBroker([outage] * 5), wall, clock)
    for second in (0, 10, 20, 30):
        wall.now = datetime(2026, 11, 23, 9, 15, second, tzinfo=IST)
        clock.now += 3600
        await account.poll()
        assert [a.rule for a in store.alerts()] == (["poll_failing"] if second == 30 else [])


async def test_poll_failing_never_repeats_a_secret_the_broker_echoed(
    tmp_path: Path, metrics: Metrics
) -> None:
    """A broker error quoting the credential: the alert's reason has it redacted."""
    account = AccountConfig(
        ACCOUNT, "kotak_neo", timedelta(seconds=5), IST, alert_after=timedelta(seconds=1)
    )
    store = Store(tmp_path / "state.db")
    echoed = BadResponse("kotak_neo", "stat Not_Ok, stCode 5000: token s3cr3t-v4lue is invalid")
    wall = WallClock(datetime(2026, 11, 23, 10, 0, tzinfo=IST))
    poller = AccountPoller(
        account, ScriptedBroker([echoed, echoed]), LiveEngine(StoreThread(store), [], []), metrics,
        on_alerts=lambda: None, clock=wall, redact=Redactor(["s3cr3t-v4lue"]).scrub,
    )  # fmt: skip
    await poller.poll()
    wall.now += timedelta(seconds=2)
    await poller.poll()
    [failing] = store.alerts()
    assert failing.details["reason"] == "stat Not_Ok, stCode 5000: token [redacted] is invalid"
    assert "s3cr3t-v4lue" not in failing.message
