"""SQLite state: the last good snapshot per account, rule states, and the alert outbox.

One transaction per poll writes the snapshot's changed rows, the rule states that changed (for
a rule that keeps one entry per position, only the entries that changed) and the new alerts
with one pending delivery per sink, before anything is delivered. A crash at any point leaves
either the whole poll or none of it: no alert is lost, and a replayed poll can at most deliver
an alert twice (at-least-once).

WAL with synchronous=NORMAL survives a killed process. An operating-system crash may roll back
the last polls, and then the next poll detects the same changes again.

A damaged file is refused when opened (SQLite's quick_check), not found poll by poll; a stored
value that does not decode is a StoreError naming its table, column and row.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import structlog

from monitor.model import Alert, Change, ChangeKind, PositionKey, Snapshot
from monitor.store_codec import BadValue, decode_account, position_row
from monitor.store_schema import StateFileRefused, open_state_file

log = structlog.get_logger(__name__)


class StoreError(Exception):
    """The state file cannot be read or written (locked, read-only, disk full, corrupt)."""


@dataclass(frozen=True, slots=True)
class StoredAccount:
    """What a restart resumes from: the last good snapshot and the rule states after it."""

    snapshot: Snapshot
    trading_day: date
    rule_states: Mapping[str, object]  # by rule name, as plain JSON data


@dataclass(frozen=True, slots=True)
class EntryWrite:
    """The entries of a rule's state that one poll changed, by entry name; None deletes one.

    A rule that keeps a peak per position writes only the peaks that moved, not the whole
    state every poll. ``replace`` first drops everything stored for the rule: the first write
    of an account's state in a process, so no entry of an older state survives.
    """

    entries: Mapping[str, object | None]
    replace: bool = False


@dataclass(frozen=True, slots=True)
class PendingAlert:
    """An outbox entry: an alert not yet delivered to one sink."""

    id: int
    alert: Alert


class Store:
    """The state file. Synchronous: each call is one short transaction in the caller's thread.

    One class for polls, outbox, mutes and meta values, longer than most: they share one
    connection, and one poll's rows, rule states and alerts must commit in one transaction.
    Opening the file lives in ``monitor.store_schema``, row decoding in ``monitor.store_codec``.
    """

    def __init__(
        self, path: Path | str, *, on_unreadable: Callable[[str], None] = lambda sink: None
    ) -> None:
        """Open (or create) the state file; ``on_unreadable(sink)`` is called for each stored
        alert of that sink's outbox that does not decode and is parked unsent."""
        self.path = str(path)
        self._on_unreadable = on_unreadable
        try:
            self._db = open_state_file(self.path)
        except (OSError, sqlite3.Error, StateFileRefused) as err:
            raise StoreError(f"state file {self.path}: {err}") from err

    def close(self) -> None:
        """Close the connection; the WAL is checkpointed into the main file."""
        self._db.close()

    def stop_auto_checkpoints(self) -> None:
        """Commit without ever checkpointing the WAL, for a store whose WAL another connection
        checkpoints (``monitor.store_checkpointer``); SQLite's default checkpoints inside the
        commit that takes the WAL past 1,000 pages."""
        self._db.execute("PRAGMA wal_autocheckpoint = 0")

    @property
    def total_changes(self) -> int:
        """Rows written through this connection since it was opened."""
        return self._db.total_changes

    def load_account(self, account: str) -> StoredAccount | None:
        """The last good snapshot and rule states of ``account``, or None if never polled.

        A stored value that does not decode (a damaged or hand-edited file) is a StoreError
        naming its table, column and row, not a crash further on.
        """
        try:
            row = self._db.execute(
                "SELECT broker, taken_at, trading_day FROM accounts WHERE account = ?", (account,)
            ).fetchone()
            if row is None:
                return None
            position_rows = self._db.execute(
                "SELECT exchange_segment, token, product, symbol, carried, net_qty, avg_price,"
                " ltp, realized, unrealized, mtm FROM positions WHERE account = ?"
                " ORDER BY exchange_segment, token, product",
                (account,),
            ).fetchall()
            state_rows = self._db.execute(
                "SELECT rule, state FROM rule_states WHERE account = ?", (account,)
            ).fetchall()
            entry_rows = self._db.execute(
                "SELECT rule, entry, state FROM rule_entries WHERE account = ?"
                " ORDER BY rule, entry",
                (account,),
            ).fetchall()
        except sqlite3.Error as err:
            raise StoreError(f"state file {self.path}: {err}") from err
        try:
            snapshot, trading_day, states = decode_account(
                account, row, position_rows, state_rows, entry_rows
            )
        except BadValue as err:
            raise StoreError(f"state file {self.path}: {err}") from None
        return StoredAccount(snapshot, trading_day, states)

    def commit_poll(
        self,
        snapshot: Snapshot,
        trading_day: date,
        changes: Iterable[Change],
        rule_states: Mapping[str, object],
        alerts: Sequence[tuple[Alert, Sequence[str]]],
        rule_entries: Mapping[str, EntryWrite] | None = None,
        carried_flipped: Iterable[PositionKey] = (),
    ) -> None:
        """Write one good poll atomically: changed rows, changed rule states, new alerts.

        ``rule_states`` holds whole states by rule name, ``rule_entries`` the changed entries
        of the states kept entry by entry. ``alerts`` pairs each alert with the sinks it
        routes to; each pair becomes a pending delivery. ``carried_flipped`` names the rows
        whose carried flag this poll turned on or off; each is stored as ``snapshot`` says.
        """
        account = snapshot.account
        upserts = []
        deletes = []
        for change in changes:
            if change.kind is ChangeKind.REMOVED:
                deletes.append(tuple(change.key))
            else:
                p = change.after
                assert p is not None  # noqa: S101 - type narrowing: added and changed rows have an after  # nosec B101
                upserts.append(position_row(p))
        with self._transaction():
            self._db.execute(
                "INSERT INTO accounts VALUES (?, ?, ?, ?) ON CONFLICT (account) DO UPDATE"
                " SET broker = excluded.broker, taken_at = excluded.taken_at,"
                " trading_day = excluded.trading_day",
                (account, snapshot.broker, snapshot.taken_at.isoformat(), trading_day.isoformat()),
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO positions (account, exchange_segment, token, product,"
                " symbol, net_qty, avg_price, ltp, realized, unrealized, mtm)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                upserts,
            )
            self._db.executemany(
                "DELETE FROM positions WHERE account = ? AND exchange_segment = ?"
                " AND token = ? AND product = ?",
                deletes,
            )
            self._db.executemany(
                "UPDATE positions SET carried = ? WHERE account = ? AND exchange_segment = ?"
                " AND token = ? AND product = ?",
                [(int(snapshot.is_carried(key)), *key) for key in carried_flipped],
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO rule_states VALUES (?, ?, ?)",
                [(account, rule, json.dumps(data)) for rule, data in rule_states.items()],
            )
            self._db.executemany(
                "DELETE FROM rule_entries WHERE account = ? AND rule = ?",
                [(account, rule) for rule in rule_states],
            )
            for rule, write in (rule_entries or {}).items():
                self._write_entries(account, rule, write)
            self._insert_alerts(alerts)

    def _write_entries(self, account: str, rule: str, write: EntryWrite) -> None:
        if write.replace:
            where = (account, rule)
            self._db.execute("DELETE FROM rule_states WHERE account = ? AND rule = ?", where)
            self._db.execute("DELETE FROM rule_entries WHERE account = ? AND rule = ?", where)
        self._db.executemany(
            "INSERT OR REPLACE INTO rule_entries VALUES (?, ?, ?, ?)",
            [
                (account, rule, entry, json.dumps(data))
                for entry, data in write.entries.items()
                if data is not None
            ],
        )
        self._db.executemany(
            "DELETE FROM rule_entries WHERE account = ? AND rule = ? AND entry = ?",
            [(account, rule, entry) for entry, data in write.entries.items() if data is None],
        )

    def commit_alerts(
        self, alerts: Sequence[tuple[Alert, Sequence[str]]], meta: Mapping[str, str] | None = None
    ) -> None:
        """Queue alerts that no poll produced (the daemon's own health alerts), atomically,
        with the ``meta`` values that say they were raised."""
        with self._transaction():
            self._insert_alerts(alerts)
            self._db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)", list((meta or {}).items())
            )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction: all of the block, or nothing of it and a StoreError."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                # SQLite ends the transaction itself on some errors (a full disk): a second
                # rollback would fail and hide the real reason behind "no transaction is active".
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as err:
            raise StoreError(f"state file {self.path}: {err}") from err

    def _insert_alerts(self, alerts: Sequence[tuple[Alert, Sequence[str]]]) -> None:
        deliveries = []
        for alert, sinks in alerts:
            cursor = self._db.execute(
                "INSERT INTO alerts (account, rule, payload) VALUES (?, ?, ?)",
                (alert.account, alert.rule, json.dumps(alert.to_json())),
            )
            deliveries += [(cursor.lastrowid, sink) for sink in sinks]
        self._db.executemany("INSERT INTO deliveries (alert_id, sink) VALUES (?, ?)", deliveries)

    def pending(self, sink: str, limit: int = 100) -> list[PendingAlert]:
        """Undelivered alerts for ``sink``, oldest first."""
        rows = self._query(
            "SELECT a.id, a.payload"
            " FROM deliveries d JOIN alerts a ON a.id = d.alert_id"
            " WHERE d.sink = ? AND d.delivered_at IS NULL AND d.failed_at IS NULL"
            " AND d.muted_at IS NULL ORDER BY d.alert_id LIMIT ?",
            (sink, limit),
        )
        pending = []
        for alert_id, payload in rows:
            try:
                alert = Alert.from_json(json.loads(payload))
            except (ValueError, KeyError, TypeError, ArithmeticError, RecursionError) as err:
                # A row no release could have written (a damaged or hand-edited file): parked,
                # said and counted, so the queue behind it moves.
                self._write(
                    "UPDATE deliveries SET failed_at = datetime('now'), last_error = ?"
                    " WHERE alert_id = ? AND sink = ?",
                    ("unreadable payload", alert_id, sink),
                )
                log.error(
                    "outbox_alert_unreadable", sink=sink, alert_id=alert_id,
                    field="alerts.payload", error=f"{type(err).__name__}: {err}"[:200],
                )  # fmt: skip
                self._on_unreadable(sink)
                continue
            pending.append(PendingAlert(alert_id, alert))
        return pending

    def mark_delivered(self, alert_ids: Sequence[int], sink: str, at: datetime) -> None:
        """The sink accepted these alerts: they leave the outbox, all in one transaction."""
        self._write_many(
            "UPDATE deliveries SET delivered_at = ?, attempts = attempts + 1"
            " WHERE alert_id = ? AND sink = ?",
            [(at.isoformat(), alert_id, sink) for alert_id in alert_ids],
        )

    def mark_muted(self, alert_ids: Sequence[int], sink: str, reason: str, at: datetime) -> None:
        """A mute held these alerts back: recorded with the reason, never sent."""
        self._write_many(
            "UPDATE deliveries SET muted_at = ?, last_error = ? WHERE alert_id = ? AND sink = ?",
            [(at.isoformat(), reason, alert_id, sink) for alert_id in alert_ids],
        )

    def mute(self, sinks: Sequence[str], target: str, until: datetime) -> None:
        """Hold back alerts matching ``target`` (``rule:NAME``/``account:ID``) until ``until``."""
        self._write_many(
            "INSERT OR REPLACE INTO mutes VALUES (?, ?, ?)",
            [(sink, target, until.isoformat()) for sink in sinks],
        )

    def unmute(self, sinks: Sequence[str], target: str | None = None) -> int:
        """Lift the mute of ``target`` (every mute when None); returns how many were lifted."""
        lifted = 0
        for sink in sinks:
            if target is None:
                lifted += self._write("DELETE FROM mutes WHERE sink = ?", (sink,))
            else:
                lifted += self._write(
                    "DELETE FROM mutes WHERE sink = ? AND target = ?", (sink, target)
                )
        return lifted

    def mutes(self, sink: str, now: datetime) -> dict[str, datetime]:
        """The mutes of ``sink`` still in force at ``now``: target -> until."""
        rows = self._query("SELECT target, until FROM mutes WHERE sink = ?", (sink,))
        active = {target: datetime.fromisoformat(until) for target, until in rows}
        return {target: until for target, until in active.items() if until > now}

    def get_meta(self, key: str) -> str | None:
        """A value the daemon keeps across restarts (such as a Telegram update offset)."""
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        """Keep ``value`` under ``key`` across restarts."""
        self._write("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def mark_attempt_failed(self, alert_id: int, sink: str, reason: str) -> None:
        """A delivery attempt failed but may succeed later: the alert stays in the outbox."""
        self._write(
            "UPDATE deliveries SET attempts = attempts + 1, last_error = ?"
            " WHERE alert_id = ? AND sink = ?",
            (reason, alert_id, sink),
        )

    def mark_undeliverable(self, alert_id: int, sink: str, reason: str, at: datetime) -> None:
        """The sink can never accept this alert: park it, recorded, out of the outbox."""
        self._write(
            "UPDATE deliveries SET failed_at = ?, attempts = attempts + 1, last_error = ?"
            " WHERE alert_id = ? AND sink = ?",
            (at.isoformat(), reason, alert_id, sink),
        )

    def drop_rule_states(self, rules: Sequence[str]) -> None:
        """Forget the stored states of ``rules`` in every account, in one transaction."""
        if not rules:
            return
        names = [(rule,) for rule in rules]
        with self._transaction():
            self._db.executemany("DELETE FROM rule_states WHERE rule = ?", names)
            self._db.executemany("DELETE FROM rule_entries WHERE rule = ?", names)

    def park_sink(self, sink: str, reason: str, at: datetime) -> int:
        """Park every pending alert of ``sink`` as undeliverable with ``reason`` (a sink that
        is gone); how many were parked."""
        return self._write(
            "UPDATE deliveries SET failed_at = ?, last_error = ?"
            " WHERE sink = ? AND delivered_at IS NULL AND failed_at IS NULL AND muted_at IS NULL",
            (at.isoformat(), reason, sink),
        )

    def outbox_depth(self) -> dict[str, int]:
        """Pending deliveries per sink."""
        return dict(
            self._query(
                "SELECT sink, count(*) FROM deliveries"
                " WHERE delivered_at IS NULL AND failed_at IS NULL AND muted_at IS NULL"
                " GROUP BY sink",
                (),
            )
        )

    def alerts(self) -> list[Alert]:
        """Every alert ever committed, oldest first."""
        rows = self._query("SELECT payload FROM alerts ORDER BY id", ())
        return [Alert.from_json(json.loads(payload)) for (payload,) in rows]

    def _query(self, sql: str, params: Sequence[object]) -> list[Any]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as err:
            raise StoreError(f"state file {self.path}: {err}") from err

    def _write(self, sql: str, params: Sequence[object]) -> int:
        try:
            return self._db.execute(sql, params).rowcount
        except sqlite3.Error as err:
            raise StoreError(f"state file {self.path}: {err}") from err

    def _write_many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        with self._transaction():
            self._db.executemany(sql, rows)
