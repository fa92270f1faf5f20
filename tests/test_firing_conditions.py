"""The conditions firing now: the engine's view for /status, and the gauge each poll updates."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.config import AccountConfig, SinkConfig
from monitor.engine import Engine, LiveEngine
from monitor.metrics import Metrics
from monitor.model import Severity, Snapshot
from monitor.poller import AccountPoller
from monitor.rules.base import PositionFilter, Rule
from monitor.rules.conditions import FiringCondition, Scope
from monitor.rules.lifecycle import Lifecycle
from monitor.rules.mtm_below import MtmBelow
from monitor.rules.new_short import NewShort
from monitor.rules.position_limit import PositionLimit
from monitor.store import Store
from monitor.store_thread import StoreThread
from tests.snapshots import IST, T0, pos, snap

LOSS_LIMIT = MtmBelow(
    "loss-limit",
    Severity.CRITICAL,
    PositionFilter(),
    Scope.ACCOUNT,
    Lifecycle(hold_for=timedelta(minutes=5), send_resolved=True),
    Decimal(-1000),
)
SIZE_CAP = PositionLimit(
    "size-cap", Severity.WARNING, PositionFilter(), Scope.POSITION, Lifecycle(), Decimal(100)
)
FRESH_SHORT = NewShort("fresh-short", Severity.WARNING, PositionFilter())
RULES: tuple[Rule, ...] = (FRESH_SHORT, LOSS_LIMIT, SIZE_CAP)
SINKS = (SinkConfig("console", "console"),)


def minutes(n: int) -> datetime:
    """T0 plus ``n`` minutes."""
    return T0 + timedelta(minutes=n)


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def engine(state_file: Path) -> Iterator[Engine]:
    store = Store(state_file)
    yield Engine(store, RULES, SINKS)
    store.close()


@pytest.fixture
def live_engine(state_file: Path) -> Iterator[LiveEngine]:
    store = Store(state_file)
    yield LiveEngine(StoreThread(store), RULES, SINKS)
    store.close()


def test_only_firing_conditions_are_listed_with_subject_and_since(engine: Engine) -> None:
    """A loss limit pending its for is not firing yet; once fired it is listed for the account,
    and a position limit for each position over it with its symbol; event rules never are."""
    big, small = pos("1", -150, mtm=-2000), pos("2", 50, mtm=0)
    engine.ingest(snap(big, small, at=minutes(0)), IST)
    assert engine.firing_conditions() == [
        FiringCondition(
            "size-cap",
            Severity.WARNING,
            "kotak-main",
            big.key,
            "SYM1",
            minutes(0),
            "position_limit",
        )
    ]
    engine.ingest(snap(big, small, at=minutes(5)), IST)
    assert [(c.rule, c.key, c.since) for c in engine.firing_conditions()] == [
        ("loss-limit", None, minutes(5)),
        ("size-cap", big.key, minutes(0)),
    ]
    assert engine.firing_counts("kotak-main") == {"loss-limit": 1, "size-cap": 1}


def test_resolved_conditions_leave_the_list(engine: Engine) -> None:
    """Back under the limits: nothing fires, and every condition rule counts 0."""
    engine.ingest(snap(pos("1", -150, mtm=-2000), at=minutes(0)), IST)
    engine.ingest(snap(pos("1", -150, mtm=-2000), at=minutes(5)), IST)
    engine.ingest(snap(pos("1", -50, mtm=0), at=minutes(6)), IST)
    assert engine.firing_conditions() == []
    assert engine.firing_counts("kotak-main") == {"loss-limit": 0, "size-cap": 0}


def test_counts_are_counted_again_only_when_the_states_moved(engine: Engine) -> None:
    """A poll that changed nothing leaves the very counts of the last one (the poller then
    skips the gauges); a pending loss limit that fires gives new counts."""
    book = (pos("1", -150, mtm=-2000), pos("2", 50, mtm=0))
    engine.ingest(snap(*book, at=minutes(0)), IST)
    pending = engine.firing_counts("kotak-main")
    assert pending == {"loss-limit": 0, "size-cap": 1}
    engine.ingest(snap(*book, at=minutes(1)), IST)  # still pending: nothing moved
    assert engine.firing_counts("kotak-main") is pending
    engine.ingest(snap(*book, at=minutes(5)), IST)  # the for ran out: the loss limit fires
    fired = engine.firing_counts("kotak-main")
    assert fired == {"loss-limit": 1, "size-cap": 1}
    assert fired is not pending


def test_every_account_is_listed_in_the_order_first_polled(engine: Engine) -> None:
    """Two accounts over the position limit: both listed, each with its own account."""
    engine.ingest(snap(pos("1", 500, account="b2"), account="b2"), IST)
    engine.ingest(snap(pos("1", -500)), IST)
    assert [c.account for c in engine.firing_conditions()] == ["b2", "kotak-main"]
    assert engine.firing_counts("b2") == {"loss-limit": 0, "size-cap": 1}
    assert engine.firing_counts("never-polled") == {"loss-limit": 0, "size-cap": 0}


def test_after_a_restart_the_stored_firing_shows_from_the_first_poll(state_file: Path) -> None:
    """The firing state comes back from the state file with its original since."""
    store = Store(state_file)
    Engine(store, RULES, SINKS).ingest(snap(pos("1", 150), at=minutes(0)), IST)
    store.close()
    store = Store(state_file)
    try:
        restarted = Engine(store, RULES, SINKS)
        assert restarted.firing_conditions() == []
        restarted.ingest(snap(pos("1", 150), at=minutes(1)), IST)
        [condition] = restarted.firing_conditions()
        assert (condition.rule, condition.since) == ("size-cap", minutes(0))
    finally:
        store.close()


# The gauge and the alert counter, as the poller keeps them.


class Broker:
    """A broker answering each poll with the next snapshot."""

    def __init__(self, *snapshots: Snapshot) -> None:
        self._snapshots = iter(snapshots)

    async def fetch(self) -> Snapshot:
        return next(self._snapshots)

    async def close(self) -> None:
        pass


def account(ident: str) -> AccountConfig:
    return AccountConfig(ident, "kotak_neo", timedelta(seconds=5), IST)


def firing(metrics: Metrics, rule: str) -> float | None:
    return metrics.registry.get_sample_value("position_monitor_conditions_firing", {"rule": rule})


def alerts(metrics: Metrics, rule: str, severity: str, state: str) -> float | None:
    """The alerts counted over every account; None when no account has the series."""
    labels = {"rule": rule, "severity": severity, "state": state}
    counts = [
        sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "position_monitor_alerts_total"
        and all(sample.labels.get(k) == v for k, v in labels.items())
    ]
    return sum(counts) if counts else None


async def test_the_gauge_sums_every_accounts_firing_subjects(
    live_engine: LiveEngine,
) -> None:
    """At 0 for every condition rule from start-up; each poll moves it by its account's share;
    a resolution takes it back down; alerts are counted by state."""
    metrics = Metrics(CollectorRegistry())
    a = Broker(
        snap(pos("1", 150, mtm=-2000), pos("2", -150), at=minutes(0)),
        snap(pos("1", 150, mtm=-2000), pos("2", -150), at=minutes(5)),
        snap(pos("1", 10, mtm=0), pos("2", 10), at=minutes(6)),
    )
    b = Broker(snap(pos("1", 500, account="b2"), account="b2", at=minutes(0)))
    pollers = [
        AccountPoller(account(ident), broker, live_engine, metrics, on_alerts=lambda: None)
        for ident, broker in (("kotak-main", a), ("b2", b))
    ]
    assert (firing(metrics, "loss-limit"), firing(metrics, "size-cap")) == (0, 0)
    assert firing(metrics, "fresh-short") is None  # an event rule has no condition
    main, other = pollers
    await main.poll()
    await other.poll()
    assert (firing(metrics, "loss-limit"), firing(metrics, "size-cap")) == (0, 3)
    await main.poll()
    assert (firing(metrics, "loss-limit"), firing(metrics, "size-cap")) == (1, 3)
    await main.poll()
    assert (firing(metrics, "loss-limit"), firing(metrics, "size-cap")) == (0, 1)
    assert alerts(metrics, "loss-limit", "critical", "firing") == 1
    assert alerts(metrics, "loss-limit", "critical", "resolved") == 1
    assert alerts(metrics, "size-cap", "warning", "firing") == 3
    assert alerts(metrics, "size-cap", "warning", "resolved") is None  # send_resolved is off
