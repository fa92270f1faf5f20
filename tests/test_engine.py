"""Engine: baseline, restart continuity through the SQLite file, and severity routing."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from monitor.config import AccountConfig, SinkConfig
from monitor.engine import Engine
from monitor.health import HealthTracker
from monitor.model import Severity, Snapshot
from monitor.rules.base import PositionFilter, Rule
from monitor.rules.conditions import Scope
from monitor.rules.lifecycle import Lifecycle
from monitor.rules.mtm_below import MtmBelow
from monitor.rules.mtm_drawdown import MtmDrawdown
from monitor.rules.new_short import NewShort
from monitor.rules.squared_off import SquaredOff
from monitor.store import Store, StoredAccount, StoreError
from tests.snapshots import ACCOUNT, BROKER, IST, T0, drawdown_entry, pos, snap

DAY = date(2026, 11, 23)  # the trading day of T0 in Asia/Kolkata

RULES: tuple[Rule, ...] = (
    NewShort("fresh-short", Severity.WARNING, PositionFilter()),
    SquaredOff("closed", Severity.INFO, PositionFilter()),
    MtmDrawdown(
        "desk-drawdown",
        Severity.CRITICAL,
        PositionFilter(),
        Scope.ACCOUNT,
        Lifecycle(),
        Decimal(1000),
    ),
)
SINKS = (
    SinkConfig("console", "console"),
    SinkConfig("pager", "console", min_severity=Severity.CRITICAL),
)


def minutes(n: int) -> datetime:
    """T0 plus ``n`` minutes."""
    return T0 + timedelta(minutes=n)


class Daemon:
    """A store + engine pair on one file that can be 'restarted' (closed and reopened)."""

    def __init__(self, path: Path, sinks: Sequence[SinkConfig] = SINKS) -> None:
        self.path = path
        self.sinks = sinks
        self.store = Store(path)
        self.engine = Engine(self.store, RULES, sinks)

    def restart(self) -> None:
        """Close the store and start a new engine on the same file."""
        self.store.close()
        self.store = Store(self.path)
        self.engine = Engine(self.store, RULES, self.sinks)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """An engine over a fresh state file."""
    d = Daemon(tmp_path / "state.db")
    yield d
    d.store.close()


def test_fresh_store_first_ingest_is_a_baseline(daemon: Daemon) -> None:
    """The first poll with no stored state alerts nothing and is committed."""
    first = snap(pos("1", -25, mtm=-500), pos("2", 10, mtm=100))
    evaluation = daemon.engine.ingest(first, IST)
    assert (evaluation.baseline, evaluation.alerts) == (True, [])
    assert daemon.store.alerts() == []
    assert daemon.store.outbox_depth() == {}
    assert daemon.engine.last_snapshot("kotak-main") == first
    assert daemon.store.load_account("kotak-main") == StoredAccount(
        first, DAY, {"desk-drawdown": [[None, None, None, "-400", None, None, None, None]]}
    )


def test_change_while_down_is_reported_once_after_restart(daemon: Daemon) -> None:
    """After a restart the next poll is diffed against the stored snapshot, once."""
    daemon.engine.ingest(snap(pos("1", 0), pos("2", 25)), IST)
    daemon.restart()
    # While the daemon was down token 1 went short and token 2 was squared off.
    moved = snap(pos("1", -25), pos("2", 0), at=minutes(5))
    evaluation = daemon.engine.ingest(moved, IST)
    assert evaluation.baseline is False
    assert [(a.rule, a.key.token if a.key else None) for a in evaluation.alerts] == [
        ("fresh-short", "1"),
        ("closed", "2"),
    ]
    assert daemon.store.alerts() == evaluation.alerts
    # The same snapshot again, after another restart, reports nothing more.
    daemon.restart()
    again = daemon.engine.ingest(snap(pos("1", -25), pos("2", 0), at=minutes(6)), IST)
    assert (again.baseline, again.changes, again.alerts) == (False, [], [])
    assert len(daemon.store.alerts()) == 2


def test_a_restart_in_the_middle_of_a_carry_continues_it(daemon: Daemon) -> None:
    """A row missing from the poll before a restart is removed by the first poll after it that
    still lacks it: a square-off then, once, and not one poll later."""
    daemon.engine.ingest(snap(pos("1", 0), pos("2", 25)), IST)
    short = daemon.engine.ingest(snap(pos("1", 0), at=minutes(1)), IST)
    assert (short.changes, short.alerts) == ([], [])
    daemon.restart()
    confirmed = daemon.engine.ingest(snap(pos("1", 0), at=minutes(2)), IST)
    assert [(a.rule, a.key.token if a.key else None) for a in confirmed.alerts] == [("closed", "2")]
    assert confirmed.alerts[0].details["row_removed"] is True
    daemon.restart()
    again = daemon.engine.ingest(snap(pos("1", 0), at=minutes(3)), IST)
    assert (again.changes, again.alerts) == ([], [])


def test_a_row_back_unchanged_is_no_longer_carried_after_a_restart(daemon: Daemon) -> None:
    """A row that comes back as it was changes nothing, but it is reported again: after a
    restart, one more short answer carries it instead of removing it."""
    daemon.engine.ingest(snap(pos("1", 0), pos("2", 25)), IST)
    daemon.engine.ingest(snap(pos("1", 0), at=minutes(1)), IST)
    back = daemon.engine.ingest(snap(pos("1", 0), pos("2", 25), at=minutes(2)), IST)
    assert (back.changes, back.alerts, back.snapshot.carried) == ([], [], frozenset())
    daemon.restart()
    short = daemon.engine.ingest(snap(pos("1", 0), at=minutes(3)), IST)
    assert (short.changes, short.alerts) == ([], [])
    assert [p.key.token for p in short.snapshot.positions.values()] == ["1", "2"]


def test_same_snapshot_twice_without_restart_reports_nothing(daemon: Daemon) -> None:
    """Ingesting an identical poll in the same process is silent."""
    daemon.engine.ingest(snap(pos("1", 0)), IST)
    daemon.engine.ingest(snap(pos("1", -1), at=minutes(1)), IST)
    repeat = daemon.engine.ingest(snap(pos("1", -1), at=minutes(2)), IST)
    assert (repeat.changes, repeat.alerts) == ([], [])
    assert len(daemon.store.alerts()) == 1


def test_drawdown_peak_survives_a_restart(daemon: Daemon) -> None:
    """The peak set before a restart is the one the next poll is measured against."""
    daemon.engine.ingest(snap(pos("1", 1, mtm=5000)), IST)
    daemon.restart()
    evaluation = daemon.engine.ingest(snap(pos("1", 1, mtm=4000), at=minutes(1)), IST)
    assert [(a.rule, a.details["peak"], a.details["drawdown"]) for a in evaluation.alerts] == [
        ("desk-drawdown", Decimal(5000), Decimal(1000))
    ]
    assert evaluation.states["desk-drawdown"] == {None: drawdown_entry(5000, minutes(1))}


def test_fired_latch_survives_a_restart(daemon: Daemon) -> None:
    """A drawdown that already fired does not fire again after a restart."""
    daemon.engine.ingest(snap(pos("1", 1, mtm=5000)), IST)
    [alert] = daemon.engine.ingest(snap(pos("1", 1, mtm=4000), at=minutes(1)), IST).alerts
    daemon.restart()
    evaluation = daemon.engine.ingest(snap(pos("1", 1, mtm=3500), at=minutes(2)), IST)
    assert evaluation.alerts == []
    assert daemon.store.alerts() == [alert]


def test_new_day_after_restart_resets(daemon: Daemon) -> None:
    """A restart into the next trading day drops vanished rows silently and resets peaks."""
    yesterday = snap(pos("1", 25, mtm=5000), at=datetime(2026, 11, 23, 15, 30, tzinfo=IST))
    daemon.engine.ingest(yesterday, IST)
    daemon.restart()
    today = snap(pos("2", 5, mtm=100), at=datetime(2026, 11, 24, 9, 15, tzinfo=IST))
    evaluation = daemon.engine.ingest(today, IST)
    assert (evaluation.new_day, evaluation.alerts) == (True, [])
    assert daemon.store.load_account("kotak-main") == StoredAccount(
        today,
        DAY + timedelta(days=1),
        {"desk-drawdown": [[None, None, None, "100", None, None, None, None]]},
    )


def test_min_severity_routing(daemon: Daemon) -> None:
    """A sink with min_severity critical gets deliveries only for critical alerts."""
    daemon.engine.ingest(snap(pos("1", 0, mtm=5000), pos("2", 10, mtm=0)), IST)
    second = snap(pos("1", -5, mtm=4000), pos("2", 0, mtm=0), at=minutes(1))
    evaluation = daemon.engine.ingest(second, IST)
    kinds = [(a.rule, a.severity) for a in evaluation.alerts]
    assert kinds == [
        ("fresh-short", Severity.WARNING),
        ("closed", Severity.INFO),
        ("desk-drawdown", Severity.CRITICAL),
    ]
    assert [p.alert for p in daemon.store.pending("console")] == evaluation.alerts
    assert [p.alert for p in daemon.store.pending("pager")] == [evaluation.alerts[2]]
    assert daemon.store.outbox_depth() == {"console": 3, "pager": 1}


def test_warning_threshold_includes_critical(tmp_path: Path) -> None:
    """min_severity warning routes warning and critical alerts but not info."""
    sinks = (SinkConfig("chat", "console", min_severity=Severity.WARNING),)
    daemon = Daemon(tmp_path / "state.db", sinks)
    try:
        daemon.engine.ingest(snap(pos("1", 0, mtm=5000), pos("2", 10, mtm=0)), IST)
        daemon.engine.ingest(snap(pos("1", -5, mtm=4000), at=minutes(1)), IST)
        assert [p.alert.rule for p in daemon.store.pending("chat")] == [
            "fresh-short",
            "desk-drawdown",
        ]
    finally:
        daemon.store.close()


def test_health_alerts_are_routed_and_their_flag_survives_a_restart(daemon: Daemon) -> None:
    """poll_failing goes to every sink that takes it, with the failing flag in the same commit;
    after a restart the flag still stands until poll_recovered clears it."""
    account = AccountConfig(ACCOUNT, "kotak_neo", timedelta(seconds=5), IST)
    health = HealthTracker(account, T0)
    failing = health.failed(minutes(5), "HTTP 503: broker unavailable")
    assert failing is not None
    daemon.engine.commit_health(failing, failing=True)
    assert [p.alert for p in daemon.store.pending("pager")] == [failing]
    daemon.restart()
    assert daemon.engine.poll_failing_raised(ACCOUNT)
    health = HealthTracker(account, minutes(6), failing=True)
    recovered = health.succeeded(minutes(7), minutes(7))
    assert recovered is not None
    daemon.engine.commit_health(recovered, failing=False)
    assert [p.alert for p in daemon.store.pending("console")] == [failing, recovered]
    daemon.restart()
    assert not daemon.engine.poll_failing_raised(ACCOUNT)


def test_store_failure_leaves_engine_and_store_unchanged(tmp_path: Path) -> None:
    """If the commit fails, ingest raises StoreError and the next poll still diffs from before."""
    dup = (SinkConfig("console", "console"), SinkConfig("console", "console"))
    daemon = Daemon(tmp_path / "state.db", dup)
    try:
        first = snap(pos("1", 0))
        daemon.engine.ingest(first, IST)
        with pytest.raises(StoreError):
            daemon.engine.ingest(snap(pos("1", -5), at=minutes(1)), IST)
        assert daemon.engine.last_snapshot("kotak-main") == first
        assert daemon.store.load_account("kotak-main") == StoredAccount(
            first, DAY, {"desk-drawdown": [[None, None, None, "0", None, None, None, None]]}
        )
        assert daemon.store.alerts() == []
    finally:
        daemon.store.close()


def test_unreadable_stored_state_starts_afresh(daemon: Daemon) -> None:
    """A stored state the rule cannot load is dropped: the next poll sets a new peak."""
    daemon.engine.ingest(snap(pos("1", 1, mtm=5000)), IST)
    daemon.store.commit_poll(
        snap(pos("1", 1, mtm=5000)), DAY, [], {"desk-drawdown": {"bad": 1}}, []
    )
    daemon.restart()
    evaluation = daemon.engine.ingest(snap(pos("1", 1, mtm=3000), at=minutes(1)), IST)
    assert evaluation.alerts == []
    assert evaluation.states["desk-drawdown"] == {None: drawdown_entry(3000)}


def test_wobbling_clock_does_not_reset_the_peak_twice(daemon: Daemon) -> None:
    """After 00:01 (new day), a poll stamped 23:58 and then 00:06 must not reset the peak again."""
    day1 = datetime(2026, 11, 23, 23, 59, tzinfo=IST)
    day2 = datetime(2026, 11, 24, 0, 1, tzinfo=IST)
    daemon.engine.ingest(snap(pos("1", 1, mtm=1000), at=day1), IST)
    assert daemon.engine.ingest(snap(pos("1", 1, mtm=0), at=day2), IST).new_day is True
    daemon.engine.ingest(snap(pos("1", 1, mtm=5000), at=day2 + timedelta(minutes=4)), IST)
    # The clock steps back across midnight, then forward again.
    stepped_back = daemon.engine.ingest(
        snap(pos("1", 1, mtm=4900), at=day1 - timedelta(minutes=1)), IST
    )
    assert stepped_back.new_day is False
    forward = daemon.engine.ingest(snap(pos("1", 1, mtm=3900), at=day2 + timedelta(minutes=5)), IST)
    # Still the same trading day as the 5000 peak: a 1100 drawdown must fire.
    assert forward.new_day is False
    assert [a.details["peak"] for a in forward.alerts] == [Decimal(5000)]


def test_position_peaks_survive_a_restart_entry_by_entry(tmp_path: Path) -> None:
    """Per-position peaks are stored as the entries that moved and resume after a restart."""
    rules = (
        MtmDrawdown(
            "leg", Severity.WARNING, PositionFilter(), Scope.POSITION, Lifecycle(), Decimal(1000)
        ),
    )
    store = Store(tmp_path / "state.db")
    engine = Engine(store, rules, SINKS)
    engine.ingest(snap(pos("1", 1, mtm=5000), pos("2", 1, mtm=100)), IST)
    engine.ingest(snap(pos("1", 1, mtm=5000), pos("2", 1, mtm=300), at=minutes(1)), IST)
    store.close()

    store = Store(tmp_path / "state.db")
    try:
        stored = store.load_account("kotak-main")
        assert stored is not None
        assert sorted(map(tuple, stored.rule_states["leg"])) == [
            ("nse_fo", "1", "NRML", "5000", None, None, None, None),
            ("nse_fo", "2", "NRML", "300", None, None, None, None),
        ]
        engine = Engine(store, rules, SINKS)
        evaluation = engine.ingest(
            snap(pos("1", 1, mtm=3900), pos("2", 1, mtm=300), at=minutes(2)), IST
        )
        assert [alert.key for alert in evaluation.alerts] == [pos("1", 1).key]
        assert evaluation.states["leg"][pos("1", 1).key] == drawdown_entry(5000, minutes(2))
    finally:
        store.close()


# Condition lifecycles through the state file: a new Engine on the same file continues them.

LOSS_LIMIT = MtmBelow(
    "loss-limit", Severity.CRITICAL, PositionFilter(), Scope.ACCOUNT,
    Lifecycle(timedelta(minutes=5), timedelta(0), timedelta(minutes=10), send_resolved=True),
    Decimal(-1000),
)  # fmt: skip


class Restarting:
    """An engine with LOSS_LIMIT over one state file, restarted before every poll."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.store = Store(path)

    def poll(self, minute: int, mtm: int) -> list[tuple[int, str, str]]:
        """Restart, then ingest one poll with account MTM ``mtm`` at T0 + ``minute``; the
        alerts as (minute, state, first word of the message)."""
        self.store.close()
        self.store = Store(self.path)
        engine = Engine(self.store, (LOSS_LIMIT,), SINKS)
        alerts = engine.ingest(snap(pos("1", 1, mtm=mtm), at=minutes(minute)), IST).alerts
        return [(minute, a.state.value, a.message.split()[0]) for a in alerts]


@pytest.fixture
def restarting(tmp_path: Path) -> Iterator[Restarting]:
    """A restarting engine over a fresh state file."""
    r = Restarting(tmp_path / "state.db")
    yield r
    r.store.close()


def test_a_restart_in_the_middle_of_for_continues_it(restarting: Restarting) -> None:
    """Pending since minute 0: the poll at minute 5 fires although two restarts came between."""
    assert restarting.poll(0, -2000) == []
    assert restarting.poll(3, -2000) == []
    assert restarting.poll(5, -2000) == [(5, "firing", "MTM")]


def test_a_firing_condition_is_not_fired_again_and_repeats_on_time(
    restarting: Restarting,
) -> None:
    """Fired at minute 5, restarted every poll: no second first alert, and the reminder comes
    10 minutes after the firing, then 10 after that."""
    fired = [restarting.poll(minute, -2000) for minute in (0, 5, 6, 14, 15, 24, 25)]
    assert [alert for alerts in fired for alert in alerts] == [
        (5, "firing", "MTM"), (15, "firing", "Still:"), (25, "firing", "Still:"),
    ]  # fmt: skip


def test_a_resolved_alert_is_committed_with_its_poll(restarting: Restarting) -> None:
    """The resolved alert is in the outbox after a restart, and is not sent twice."""
    for minute in (0, 5):
        restarting.poll(minute, -2000)
    assert restarting.poll(7, 0) == [(7, "resolved", "Resolved:")]
    assert restarting.poll(8, 0) == []
    stored = restarting.store.alerts()
    assert [(a.state.value, a.at) for a in stored] == [
        ("firing", minutes(5)),
        ("resolved", minutes(7)),
    ]
    assert [p.alert for p in restarting.store.pending("pager")] == stored


def test_the_very_same_rows_again_are_evaluated_only_while_time_can_move_a_rule(
    tmp_path: Path,
) -> None:
    """A client hands back the very rows of its last poll when it read the same bytes. While a
    loss limit waits out its ``for`` such polls are still evaluated and it fires on time; once
    every rule is at rest they change nothing, until a new day starts afresh with them."""
    loss_limit = MtmBelow(
        "loss-limit", Severity.CRITICAL, PositionFilter(), Scope.ACCOUNT,
        Lifecycle(hold_for=timedelta(minutes=5)), Decimal(-1000),
    )  # fmt: skip
    drawdown = RULES[2]
    store = Store(tmp_path / "state.db")
    engine = Engine(store, (loss_limit, drawdown), SINKS)
    rows = snap(pos("1", 5, mtm=-4000), pos("2", -5, mtm=1000)).positions

    def again(at: datetime) -> Snapshot:
        return Snapshot(ACCOUNT, BROKER, at, rows)  # the very same mapping, a new time

    engine.ingest(again(minutes(0)), IST)  # baseline: the limit starts its for
    assert engine.ingest(again(minutes(1)), IST).alerts == []
    firing = engine.ingest(again(minutes(5)), IST)
    [fired] = firing.alerts
    assert (fired.rule, fired.details["mtm"]) == ("loss-limit", Decimal(-3000))
    quiet = engine.ingest(again(minutes(6)), IST)
    assert (quiet.alerts, quiet.changes, quiet.new_day) == ([], [], False)
    assert quiet.states is firing.states, "premise: the quiet poll was not evaluated"
    assert quiet.states["loss-limit"][None].condition.firing_since == minutes(5)
    assert engine.last_snapshot(ACCOUNT).taken_at == minutes(6)

    next_day = engine.ingest(again(minutes(24 * 60)), IST)
    assert next_day.new_day and next_day.trading_day == DAY + timedelta(days=1)
    assert next_day.states["desk-drawdown"][None].peak == Decimal(-3000)  # a fresh peak
    store.close()
