"""Each account's timer: due times on a fixed grid, slots a long poll covered skipped and
counted (never made up in a burst), the lag observed, a removed account's timer gone."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry

from monitor.config import AccountConfig
from monitor.engine import Engine
from monitor.metrics import Metrics
from monitor.model import Snapshot
from monitor.poller import AccountPoller
from monitor.pollers import Pollers
from monitor.store import Store
from tests.snapshots import ACCOUNT, IST, T0, pos, snap

INTERVAL = 0.2  # seconds


class HeldBroker:
    """Answers every poll with the same book; the first poll waits until the test lets it go.
    Records the loop time each poll started."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started: list[float] = []
        self.arrived = asyncio.Condition()

    async def fetch(self) -> Snapshot:
        async with self.arrived:
            self.started.append(asyncio.get_running_loop().time())
            self.arrived.notify_all()
        if len(self.started) == 1:
            await self.release.wait()
        return snap(pos(qty=1), at=T0 + timedelta(seconds=len(self.started)))

    async def until(self, count: int) -> None:
        async with asyncio.timeout(60):  # generous: a busy machine is slow, not wrong
            async with self.arrived:
                await self.arrived.wait_for(lambda: len(self.started) >= count)

    async def close(self) -> None:
        pass


def sample(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.registry.get_sample_value(name, labels or {}) or 0.0


async def test_a_long_poll_skips_the_slots_it_covered_and_the_next_polls_keep_their_slots(
    tmp_path: Path,
) -> None:
    metrics = Metrics(CollectorRegistry())
    # A poll's own deadline (four request timeouts) must not end the held poll first.
    account = AccountConfig(
        ACCOUNT, "kotak_neo", timedelta(seconds=INTERVAL), IST, timeout=timedelta(seconds=30)
    )
    broker = HeldBroker()
    engine = Engine(Store(tmp_path / "state.db"), [], [])
    pollers = Pollers(metrics)
    pollers.add(AccountPoller(account, broker, engine, metrics, on_alerts=lambda: None), broker)
    pollers.start()
    loop = asyncio.get_running_loop()
    try:
        await broker.until(1)
        held_from = loop.time()
        await asyncio.sleep(5 * INTERVAL)  # the first poll holds on while slots pass
        released = loop.time()
        broker.release.set()
        await broker.until(3)
        covered = loop.time() - held_from
    finally:
        await pollers.stop()

    assert covered >= 5 * INTERVAL, "premise: the first poll covered five intervals"
    skipped = sample(
        metrics, "position_monitor_polls_total", {"account": ACCOUNT, "outcome": "skipped_busy"}
    )
    assert skipped >= 4
    second, third = broker.started[1:3]
    # No burst: the next poll waits for the first slot after the held one ended, and the one
    # after it for the slot after that (a timer never fires before its due time).
    assert second >= released
    assert third >= released + INTERVAL
    assert sample(metrics, "position_monitor_poll_lag_seconds_count") >= 3


async def test_a_removed_account_polls_no_more(tmp_path: Path) -> None:
    metrics = Metrics(CollectorRegistry())
    account = AccountConfig(ACCOUNT, "kotak_neo", timedelta(seconds=INTERVAL), IST)
    broker = HeldBroker()
    broker.release.set()
    engine = Engine(Store(tmp_path / "state.db"), [], [])
    pollers = Pollers(metrics)
    pollers.add(AccountPoller(account, broker, engine, metrics, on_alerts=lambda: None), broker)
    pollers.start()
    try:
        await broker.until(2)
        await pollers.remove(ACCOUNT)
        polled = len(broker.started)
        await asyncio.sleep(3 * INTERVAL)  # three slots in which a live timer would poll
        assert len(broker.started) == polled
        assert pollers.pollers == []
    finally:
        await pollers.stop()


class CrashingOnce(AccountPoller):
    """A poller whose first poll raises past its own guard, as a bug outside the fetch,
    evaluation and commit would (a metric, a log call, a sink's routing)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.crashed = 0

    async def poll(self) -> None:
        if not self.crashed:
            self.crashed += 1
            raise RuntimeError("a bug after the poll")
        await super().poll()


async def test_a_poll_that_raises_does_not_end_the_accounts_polling(tmp_path: Path) -> None:
    metrics = Metrics(CollectorRegistry())
    account = AccountConfig(ACCOUNT, "kotak_neo", timedelta(seconds=INTERVAL), IST)
    broker = HeldBroker()
    broker.release.set()
    engine = Engine(Store(tmp_path / "state.db"), [], [])
    pollers = Pollers(metrics)
    poller = CrashingOnce(account, broker, engine, metrics, on_alerts=lambda: None)
    pollers.add(poller, broker)
    pollers.start()
    try:
        await broker.until(2)  # a dead timer never gets here: the test's timeout ends it
    finally:
        await pollers.stop()
    assert poller.crashed == 1
