"""The SQLite store: snapshot and rule-state round trips, the outbox, atomicity, bad files."""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from monitor.diff import diff
from monitor.model import Alert, Severity, Snapshot
from monitor.store import EntryWrite, PendingAlert, Store, StoredAccount, StoreError
from tests.snapshots import IST, T0, key, pos, snap

DAY = date(2026, 11, 23)

DELIVERED_AT = datetime(2026, 11, 23, 9, 21, tzinfo=IST)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """Where the state file goes."""
    return tmp_path / "state.db"


@pytest.fixture
def store(path: Path) -> Iterator[Store]:
    """An open store on a fresh file."""
    s = Store(path)
    yield s
    s.close()


def alert(token: str, qty: int = -25, *, rule: str = "fresh-short", at: datetime = T0) -> Alert:
    """A new_short-like alert about ``token``."""
    return Alert(
        rule=rule,
        kind="new_short",
        severity=Severity.WARNING,
        account="kotak-main",
        key=key(token),
        symbol=f"SYM{token}",
        at=at,
        message=f"New short SYM{token}",
        details={"net_qty_before": Decimal(0), "net_qty": Decimal(qty), "row_removed": False},
    )


def account_alert() -> Alert:
    """An account-wide alert (no key) with fractional details."""
    return Alert(
        rule="desk-drawdown",
        kind="mtm_drawdown",
        severity=Severity.CRITICAL,
        account="kotak-main",
        key=None,
        symbol=None,
        at=T0,
        message="MTM drawdown",
        details={"mtm": Decimal("-1234.56"), "peak": Decimal(0), "drawdown": Decimal("1234.56")},
    )


def baseline(store: Store, current: Snapshot, states: dict[str, object] | None = None) -> None:
    """Commit ``current`` as the first poll of its account."""
    store.commit_poll(current, DAY, diff(None, current), states or {}, [])


def row_count(path: Path, table: str) -> int:
    """Rows in ``table``, read through a separate connection."""
    with sqlite3.connect(path) as db:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608


# Snapshots and rule states


def test_unknown_account_loads_as_none(store: Store) -> None:
    """An account never committed has nothing stored."""
    assert store.load_account("kotak-main") is None


def test_snapshot_and_rule_states_round_trip(store: Store) -> None:
    """Decimals come back with their exact digits, None stays None, states as JSON data."""
    current = snap(
        pos("53179", "-25", avg_price="45012.50", ltp="45100.05", realized="0.00",
            unrealized="-2201.25", mtm="-2201.25", symbol="BANKNIFTY21JULFUT"),
        pos("11536", "0.5", product="MIS", avg_price=None, ltp=None, realized="-0.10",
            unrealized=None, mtm=None),
        pos("11536", "1E+3", product="NRML", mtm="1234567890123456789.123456789"),
    )  # fmt: skip
    states = {
        "desk-drawdown": [[None, None, None, "5000.50", True]],
        "fresh-short": None,
    }
    baseline(store, current, states)
    loaded = store.load_account("kotak-main")
    assert loaded == StoredAccount(current, DAY, states)
    assert loaded is not None
    assert loaded.snapshot.taken_at.isoformat() == "2026-11-23T09:20:05+05:30"
    assert loaded.snapshot.broker == "kotak_neo"
    by_key = loaded.snapshot.positions
    short = by_key[key("53179")]
    assert [str(v) for v in (short.net_qty, short.avg_price, short.realized, short.mtm)] == [
        "-25", "45012.50", "0.00", "-2201.25",
    ]  # fmt: skip
    assert str(by_key[key("11536", product="NRML")].net_qty) == "1E+3"
    assert str(by_key[key("11536", product="NRML")].mtm) == "1234567890123456789.123456789"
    assert by_key[key("11536", product="MIS")].mtm is None


def test_empty_snapshot_is_stored(store: Store) -> None:
    """An account polled with no positions is known (not None) with an empty snapshot."""
    baseline(store, snap())
    assert store.load_account("kotak-main") == StoredAccount(snap(), DAY, {})


def test_accounts_are_kept_apart(store: Store) -> None:
    """Each account loads only its own positions and states."""
    baseline(store, snap(pos("1", 5)), {"r": 1})
    other = snap(pos("1", -5, account="samco-1"), account="samco-1", broker="samco")
    baseline(store, other, {"r": 2})
    assert store.load_account("samco-1") == StoredAccount(other, DAY, {"r": 2})
    assert store.load_account("kotak-main") == StoredAccount(snap(pos("1", 5)), DAY, {"r": 1})


def test_later_poll_updates_changed_deletes_removed_and_adds(store: Store, path: Path) -> None:
    """Changed rows are updated, removed rows deleted, added rows inserted, others kept."""
    first = snap(pos("1", 25), pos("2", 10), pos("3", 5))
    baseline(store, first)
    later = T0 + timedelta(minutes=1)
    second = snap(pos("1", -25, mtm="-12.5"), pos("3", 5), pos("4", 7), at=later)
    store.commit_poll(second, DAY, diff(first, second), {}, [])
    assert store.load_account("kotak-main") == StoredAccount(second, DAY, {})
    assert row_count(path, "positions") == 3


def test_only_the_given_changes_are_written(store: Store) -> None:
    """commit_poll writes the changes it is given, not the whole snapshot."""
    first = snap(pos("1", 25))
    baseline(store, first)
    second = snap(pos("1", 30), at=T0 + timedelta(minutes=1))
    store.commit_poll(second, DAY, [], {}, [])
    loaded = store.load_account("kotak-main")
    assert loaded is not None
    assert loaded.snapshot.positions[key("1")].net_qty == Decimal(25)
    assert loaded.snapshot.taken_at == T0 + timedelta(minutes=1)


def test_rule_states_are_upserted_by_name(store: Store) -> None:
    """A later poll replaces the states it names and keeps the others."""
    baseline(store, snap(), {"a": [1], "b": {"x": "1"}})
    store.commit_poll(snap(), DAY, [], {"a": [2], "c": []}, [])
    loaded = store.load_account("kotak-main")
    assert loaded is not None
    assert loaded.rule_states == {"a": [2], "b": {"x": "1"}, "c": []}


def test_data_survives_reopening(path: Path) -> None:
    """Everything committed is there after closing and reopening the file."""
    first = Store(path)
    baseline(first, snap(pos("1", 25)), {"r": [True]})
    first.commit_poll(snap(pos("1", 25)), DAY, [], {}, [(alert("1"), ["console"])])
    first.close()
    second = Store(path)
    try:
        assert second.load_account("kotak-main") == StoredAccount(
            snap(pos("1", 25)), DAY, {"r": [True]}
        )
        assert [p.alert for p in second.pending("console")] == [alert("1")]
    finally:
        second.close()


# The outbox


def test_one_pending_delivery_per_routed_sink(store: Store) -> None:
    """Each (alert, sinks) pair makes one pending delivery per sink, oldest first."""
    a1, a2, a3 = alert("1"), account_alert(), alert("3")
    store.commit_poll(snap(), DAY, [], {}, [(a1, ["console", "telegram"]), (a2, ["console"])])
    store.commit_poll(snap(), DAY, [], {}, [(a3, ["telegram", "console"])])
    console = store.pending("console")
    assert [p.alert for p in console] == [a1, a2, a3]
    ids = [p.id for p in console]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    assert store.pending("telegram") == [PendingAlert(ids[0], a1), PendingAlert(ids[2], a3)]
    assert store.pending("pager") == []
    assert store.outbox_depth() == {"console": 3, "telegram": 2}
    assert store.alerts() == [a1, a2, a3]


def test_alert_without_sinks_is_recorded_but_not_pending(store: Store) -> None:
    """An alert routed nowhere is kept in the alert log but has no delivery."""
    store.commit_poll(snap(), DAY, [], {}, [(alert("1"), [])])
    assert store.alerts() == [alert("1")]
    assert store.outbox_depth() == {}


def test_pending_limit(store: Store) -> None:
    """pending(sink, limit) returns at most ``limit`` oldest alerts."""
    alerts = [alert(str(i)) for i in range(5)]
    store.commit_poll(snap(), DAY, [], {}, [(a, ["console"]) for a in alerts])
    assert [p.alert for p in store.pending("console", limit=2)] == alerts[:2]


def test_mark_delivered_removes_from_pending(store: Store) -> None:
    """A delivered alert leaves that sink's outbox only."""
    a1, a2 = alert("1"), alert("2")
    store.commit_poll(snap(), DAY, [], {}, [(a1, ["console", "telegram"]), (a2, ["console"])])
    first = store.pending("console")[0]
    store.mark_delivered([first.id], "console", DELIVERED_AT)
    assert [p.alert for p in store.pending("console")] == [a2]
    assert [p.alert for p in store.pending("telegram")] == [a1]
    assert store.outbox_depth() == {"console": 1, "telegram": 1}


def test_mark_attempt_failed_keeps_it_pending_and_counts(store: Store, path: Path) -> None:
    """A failed attempt leaves the alert pending, with one more attempt and its error kept
    for whoever inspects the outbox."""
    store.commit_poll(snap(), DAY, [], {}, [(alert("1"), ["telegram"])])
    [pending] = store.pending("telegram")
    store.mark_attempt_failed(pending.id, "telegram", "timeout")
    store.mark_attempt_failed(pending.id, "telegram", "HTTP 502")
    assert store.pending("telegram") == [PendingAlert(pending.id, alert("1"))]
    assert store.outbox_depth() == {"telegram": 1}
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT attempts, last_error FROM deliveries").fetchone()
    assert row == (2, "HTTP 502")


def test_mark_undeliverable_removes_it(store: Store) -> None:
    """An undeliverable alert leaves the outbox but stays in the alert log."""
    store.commit_poll(snap(), DAY, [], {}, [(alert("1"), ["telegram"]), (alert("2"), ["telegram"])])
    first = store.pending("telegram")[0]
    store.mark_undeliverable(first.id, "telegram", "chat not found", DELIVERED_AT)
    assert [p.alert for p in store.pending("telegram")] == [alert("2")]
    assert store.outbox_depth() == {"telegram": 1}
    assert store.alerts() == [alert("1"), alert("2")]


def test_outbox_depth_empty_when_all_delivered(store: Store) -> None:
    """Sinks with nothing pending do not appear in outbox_depth."""
    store.commit_poll(snap(), DAY, [], {}, [(alert("1"), ["console"])])
    [pending] = store.pending("console")
    store.mark_delivered([pending.id], "console", DELIVERED_AT)
    assert store.outbox_depth() == {}


def test_alert_round_trips_through_the_outbox(store: Store) -> None:
    """A stored alert comes back equal, with its key, time and Decimal details."""
    store.commit_poll(
        snap(), DAY, [], {}, [(account_alert(), ["console"]), (alert("9"), ["console"])]
    )
    [acct, pos_alert] = [p.alert for p in store.pending("console")]
    assert acct == account_alert()
    assert acct.key is None
    assert acct.details["mtm"] == Decimal("-1234.56")
    assert pos_alert == alert("9")
    assert pos_alert.details["row_removed"] is False
    assert pos_alert.at.isoformat() == "2026-11-23T09:20:05+05:30"


# File handling and atomicity


def test_file_is_created_owner_only(path: Path, store: Store) -> None:
    """The state file and its WAL companions are created with mode 0600."""
    baseline(store, snap(pos("1", 1)))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for companion in (path.with_name("state.db-wal"), path.with_name("state.db-shm")):
        assert stat.S_IMODE(companion.stat().st_mode) == 0o600, companion


def test_failed_commit_writes_nothing_of_that_poll(store: Store, path: Path) -> None:
    """A constraint error on the last insert rolls back the rows, states and alerts before it."""
    first = snap(pos("1", 25), pos("2", 10))
    baseline(store, first, {"dd": ["before"]})
    store.commit_poll(first, DAY, [], {}, [(alert("0"), ["console"])])
    second = snap(pos("1", -25), pos("3", 1), at=T0 + timedelta(minutes=1))
    # The same sink twice for one alert violates the deliveries primary key.
    with pytest.raises(StoreError) as info:
        store.commit_poll(
            second,
            DAY,
            diff(first, second),
            {"dd": ["after"], "new": []},
            [(alert("1"), ["telegram"]), (alert("3"), ["console", "console"])],
        )
    assert str(info.value).startswith(f"state file {path}: ")
    assert store.load_account("kotak-main") == StoredAccount(first, DAY, {"dd": ["before"]})
    assert store.alerts() == [alert("0")]
    assert store.outbox_depth() == {"console": 1}
    assert row_count(path, "alerts") == 1
    assert row_count(path, "deliveries") == 1


def test_store_is_usable_after_a_failed_commit(store: Store) -> None:
    """The rolled-back transaction is closed: the next commit succeeds."""
    with pytest.raises(StoreError):
        store.commit_poll(snap(pos("1", 1)), DAY, [], {}, [(alert("1"), ["x", "x"])])
    assert store.load_account("kotak-main") is None
    baseline(store, snap(pos("1", 1)))
    store.commit_poll(snap(pos("1", 1)), DAY, [], {}, [(alert("1"), ["x"])])
    assert store.load_account("kotak-main") == StoredAccount(snap(pos("1", 1)), DAY, {})
    assert store.outbox_depth() == {"x": 1}


def test_a_full_file_names_itself_and_the_next_commit_works(store: Store) -> None:
    """SQLite rolls a transaction back by itself when the file cannot grow: the error says
    "database or disk is full" (not a failed second rollback), and later commits work."""
    baseline(store, snap(pos("1", 1)))
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")  # the file cannot grow
    many = snap(*(pos(str(n), n) for n in range(2, 400)))
    alerts = [(alert(str(n)), ["console"]) for n in range(50)]
    with pytest.raises(StoreError, match=r"database or disk is full$"):
        store.commit_poll(many, DAY, diff(snap(pos("1", 1)), many), {}, alerts)
    with pytest.raises(StoreError, match=r"database or disk is full$"):
        store.commit_alerts(alerts)
    store._db.execute(f"PRAGMA max_page_count = {pages * 100}")
    store.commit_poll(many, DAY, diff(snap(pos("1", 1)), many), {}, alerts)
    assert store.outbox_depth() == {"console": 50}


def test_commit_fails_while_another_writer_holds_the_lock(path: Path) -> None:
    """A second process holding the write lock makes commit_poll fail with nothing written."""
    store = Store(path)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("PRAGMA busy_timeout = 0")
        other.execute("BEGIN EXCLUSIVE")
        # Store's busy_timeout is 5 s: keep the lock for the whole wait.
        with pytest.raises(StoreError, match="database is locked"):
            store.commit_poll(snap(pos("1", 1)), DAY, [], {}, [(alert("1"), ["console"])])
        other.execute("ROLLBACK")
        assert store.load_account("kotak-main") is None
        assert store.outbox_depth() == {}
    finally:
        other.close()
        store.close()


def test_directory_path_is_a_store_error(tmp_path: Path) -> None:
    """Opening a directory as the state file raises StoreError naming the path."""
    with pytest.raises(StoreError) as info:
        Store(tmp_path)
    assert str(tmp_path) in str(info.value)
    assert str(info.value).startswith(f"state file {tmp_path}: ")


def test_non_sqlite_file_is_a_store_error(tmp_path: Path) -> None:
    """A file that is not a SQLite database raises StoreError naming the path."""
    bogus = tmp_path / "notes.txt"
    bogus.write_bytes(b"this is not a database\n" * 200)
    with pytest.raises(StoreError) as info:
        Store(bogus)
    assert str(info.value).startswith(f"state file {bogus}: ")
    assert "not a database" in str(info.value)


def test_missing_parent_directory_is_a_store_error(tmp_path: Path) -> None:
    """A path whose directory does not exist raises StoreError naming the path."""
    missing = tmp_path / "nope" / "state.db"
    with pytest.raises(StoreError) as info:
        Store(missing)
    assert str(info.value).startswith(f"state file {missing}: ")


def test_schema_version_mismatch_is_refused(path: Path) -> None:
    """A state file from another schema version is refused, naming the file and both versions."""
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '3' WHERE key = 'schema'")
    db.close()
    with pytest.raises(StoreError) as info:
        Store(path)
    assert str(info.value) == f"state file {path}: schema version 3, this release reads 2"


def test_carried_flags_are_stored_as_the_poll_turns_them(store: Store) -> None:
    """Only the rows named as flipped are rewritten; each reads back carried or not."""
    first = snap(pos("1", 25), pos("2", 10), pos("3", 5))
    baseline(store, first)
    short = snap(pos("3", 5), pos("1", 25), pos("2", 10), carried=frozenset({key("1"), key("2")}))
    store.commit_poll(short, DAY, [], {}, [], None, {key("1"), key("2")})
    assert store.load_account("kotak-main") == StoredAccount(short, DAY, {})
    back = snap(pos("1", 25), pos("3", 5), pos("2", 10), carried=frozenset({key("2")}))
    store.commit_poll(back, DAY, [], {}, [], None, {key("1")})
    loaded = store.load_account("kotak-main")
    assert loaded is not None
    assert loaded.snapshot.carried == {key("2")}


# The columns of positions in schema version 1, the release before rows were carried.
V1_POSITIONS = """
CREATE TABLE positions (
    account TEXT NOT NULL, exchange_segment TEXT NOT NULL, token TEXT NOT NULL,
    product TEXT NOT NULL, symbol TEXT NOT NULL, net_qty TEXT NOT NULL, avg_price TEXT,
    ltp TEXT, realized TEXT, unrealized TEXT, mtm TEXT,
    PRIMARY KEY (account, exchange_segment, token, product)
) WITHOUT ROWID;
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE accounts (
    account TEXT PRIMARY KEY, broker TEXT NOT NULL, taken_at TEXT NOT NULL,
    trading_day TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO meta VALUES ('schema', '1');
INSERT INTO accounts VALUES ('kotak-main', 'kotak_neo', '2026-11-23T09:20:05+05:30', '2026-11-23');
INSERT INTO positions VALUES
    ('kotak-main', 'nse_fo', '1', 'NRML', 'SYM1', '25', NULL, NULL, NULL, NULL, '0');
"""


def test_a_version_1_file_is_upgraded_in_place(path: Path) -> None:
    """A state file written before rows were carried opens, keeps its rows (none carried),
    says schema version 2, and stores carried rows from then on."""
    with sqlite3.connect(path) as db:
        db.executescript(V1_POSITIONS)
    db.close()
    store = Store(path)
    try:
        assert store.load_account("kotak-main") == StoredAccount(snap(pos("1", 25)), DAY, {})
        short = snap(pos("1", 25), carried=frozenset({key("1")}))
        store.commit_poll(short, DAY, [], {}, [], None, {key("1")})
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("2",)
    db.close()
    reopened = Store(path)
    try:
        assert reopened.load_account("kotak-main") == StoredAccount(short, DAY, {})
    finally:
        reopened.close()


def test_a_failed_upgrade_is_refused_and_leaves_the_file_as_it_was(path: Path) -> None:
    """An upgrade that fails (here a hand-made file that already has the column) names the file
    and both versions, and the file still says version 1."""
    with sqlite3.connect(path) as db:
        db.executescript(V1_POSITIONS)
        db.execute("ALTER TABLE positions ADD COLUMN carried INTEGER")
    db.close()
    with pytest.raises(StoreError) as info:
        Store(path)
    assert str(info.value) == (
        f"state file {path}: cannot upgrade from schema version 1 to 2:"
        " duplicate column name: carried"
    )
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("1",)
    db.close()


def test_in_memory_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """':memory:' works for replay and creates no file."""
    monkeypatch.chdir(tmp_path)
    store = Store(":memory:")
    baseline(store, snap(pos("1", 1)))
    assert store.load_account("kotak-main") == StoredAccount(snap(pos("1", 1)), DAY, {})
    store.close()
    assert list(tmp_path.iterdir()) == []


def test_rule_entries_are_written_one_by_one_and_read_back_as_a_list(store: Store) -> None:
    """Entries are upserted and deleted by name; a replace drops the rule's older state."""
    baseline(store, snap(), {"legs": [["old", "whole", "state", "1", False]]})
    store.commit_poll(
        snap(), DAY, [], {}, [],
        {"legs": EntryWrite({"a": ["a", "1"], "b": ["b", "2"]}, replace=True)},
    )  # fmt: skip
    loaded = store.load_account("kotak-main")
    assert loaded is not None
    assert loaded.rule_states == {"legs": [["a", "1"], ["b", "2"]]}

    store.commit_poll(snap(), DAY, [], {}, [], {"legs": EntryWrite({"a": None, "c": ["c", "3"]})})
    loaded = store.load_account("kotak-main")
    assert loaded is not None
    assert loaded.rule_states == {"legs": [["b", "2"], ["c", "3"]]}


def test_a_whole_state_replaces_the_rules_entries(store: Store) -> None:
    """A rule that stores its state whole again leaves no entries behind."""
    baseline(store, snap())
    store.commit_poll(snap(), DAY, [], {}, [], {"r": EntryWrite({"a": ["a"]}, replace=True)})
    store.commit_poll(snap(), DAY, [], {"r": {"whole": True}}, [])
    loaded = store.load_account("kotak-main")
    assert loaded is not None
    assert loaded.rule_states == {"r": {"whole": True}}


# Damaged files and bad stored values


def garble_table(path: Path, table: str) -> None:
    """Overwrite the root page of ``table`` with garbage, as a bad disk block would."""
    with sqlite3.connect(path) as db:
        [(root,)] = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,))
        [(page_size,)] = db.execute("PRAGMA page_size")
    with path.open("r+b") as out:
        out.seek((root - 1) * page_size)
        out.write(b"\xa5" * page_size)


def test_a_damaged_file_is_refused_when_opened(path: Path) -> None:
    """Damage in a table no open reads (the alerts) is found at open, naming the file."""
    store = Store(path)
    store.commit_poll(snap(), DAY, [], {}, [(alert(str(n)), ["one"]) for n in range(50)])
    store.close()  # the WAL is checkpointed into the file
    garble_table(path, "alerts")
    with pytest.raises(StoreError) as info:
        Store(path)
    assert str(info.value).startswith(f"state file {path}: damaged (")
    assert str(info.value).endswith(
        "restore it from a backup, or move it away to start from a fresh baseline"
    )
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("update", "named"),
    [
        (
            "UPDATE positions SET net_qty = 'abc'",
            "positions.net_qty of account 'kotak-main', position 'nse_fo' '1' 'NRML': 'abc'"
            " does not decode (not a number)",
        ),
        ("UPDATE positions SET mtm = 'NaN'", "positions.mtm of account 'kotak-main'"),
        (
            "UPDATE positions SET carried = 2",
            "positions.carried of account 'kotak-main', position 'nse_fo' '1' 'NRML': 2 is not"
            " 0 or 1",
        ),
        (
            "UPDATE positions SET symbol = x'ff'",
            "positions.symbol of account 'kotak-main', position 'nse_fo' '1' 'NRML': b'\\xff'"
            " does not decode (not text but bytes)",
        ),
        (
            "UPDATE accounts SET trading_day = '2026-13-45'",
            "accounts.trading_day of account 'kotak-main': '2026-13-45' does not decode",
        ),
        ("UPDATE accounts SET taken_at = '2026-11-23T09:20:05'", "accounts.taken_at"),
        (
            "UPDATE rule_states SET state = '{not json'",
            "rule_states.state of account 'kotak-main', rule 'fresh-short': '{not json'",
        ),
        (
            "UPDATE rule_entries SET state = '[' || printf('%.200000c', '[')",
            "rule_entries.state of account 'kotak-main', rule 'desk-drawdown', entry 'e1'",
        ),
    ],
)
def test_a_stored_value_that_does_not_decode_is_a_named_store_error(
    store: Store, path: Path, update: str, named: str
) -> None:
    """A damaged or hand-edited value is a StoreError naming table, column and row."""
    baseline(store, snap(pos("1", 5, mtm=100)), {"fresh-short": {"armed": True}})
    store.commit_poll(
        snap(pos("1", 5, mtm=100)), DAY, [], {}, [], {"desk-drawdown": EntryWrite({"e1": [1]})}
    )
    with sqlite3.connect(path) as db:
        db.execute(update)
    with pytest.raises(StoreError) as info:
        store.load_account("kotak-main")
    assert str(info.value).startswith(f"state file {path}: {named}")
    assert len(str(info.value)) < len(str(path)) + 250, "one short line"


def test_unreadable_outbox_alerts_are_said_counted_and_skipped(path: Path) -> None:
    """Stored alerts that do not decode (bad JSON, a bad field, nesting too deep to parse) are
    parked, logged and reported to the hook; the good ones around them are delivered."""
    unreadable: list[str] = []
    store = Store(path, on_unreadable=unreadable.append)
    try:
        store.commit_poll(snap(), DAY, [], {}, [(alert(str(n)), ["one"]) for n in range(1, 6)])
        with sqlite3.connect(path) as db:
            db.execute("UPDATE alerts SET payload = '{broken' WHERE id = 1")
            db.execute(
                "UPDATE alerts SET payload = json_set(payload, '$.severity', 'bogus') WHERE id = 2"
            )
            db.execute("UPDATE alerts SET payload = printf('%.200000c', '[') WHERE id = 4")
        with capture_logs() as logs:
            pending = store.pending("one")
        assert [p.alert.message for p in pending] == ["New short SYM3", "New short SYM5"]
        assert unreadable == ["one", "one", "one"]
        said = [e for e in logs if e["event"] == "outbox_alert_unreadable"]
        assert [(e["alert_id"], e["sink"], e["field"]) for e in said] == [
            (1, "one", "alerts.payload"), (2, "one", "alerts.payload"),
            (4, "one", "alerts.payload"),
        ]  # fmt: skip
        assert store.outbox_depth() == {"one": 2}
        assert store.pending("one") == pending, "parked, not said again"
        assert unreadable == ["one", "one", "one"]
    finally:
        store.close()
