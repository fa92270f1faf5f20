"""The state file's tables, and opening it: created owner-only, checked sound, of this schema.

What a file holds is described in the docstring of ``monitor.store``; this module only makes
sure the file is one this release can read and write before the first poll is stored.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from pathlib import Path

SCHEMA_VERSION = "2"

# Version 1 had no ``positions.carried``: its rows were all reported by the last poll, which is
# what the column's default says. Opening such a file adds the column in place.
MIGRATIONS = {
    "1": "ALTER TABLE positions ADD COLUMN carried INTEGER NOT NULL DEFAULT 0",
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS accounts (
    account TEXT PRIMARY KEY,
    broker TEXT NOT NULL,
    taken_at TEXT NOT NULL,
    trading_day TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS positions (
    account TEXT NOT NULL,
    exchange_segment TEXT NOT NULL,
    token TEXT NOT NULL,
    product TEXT NOT NULL,
    symbol TEXT NOT NULL,
    net_qty TEXT NOT NULL,
    avg_price TEXT,
    ltp TEXT,
    realized TEXT,
    unrealized TEXT,
    mtm TEXT,
    carried INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account, exchange_segment, token, product)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rule_states (
    account TEXT NOT NULL,
    rule TEXT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (account, rule)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rule_entries (
    account TEXT NOT NULL,
    rule TEXT NOT NULL,
    entry TEXT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (account, rule, entry)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL,
    rule TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    alert_id INTEGER NOT NULL REFERENCES alerts (id),
    sink TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    delivered_at TEXT,
    failed_at TEXT,
    muted_at TEXT,
    last_error TEXT,
    PRIMARY KEY (alert_id, sink)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (sink, alert_id)
    WHERE delivered_at IS NULL AND failed_at IS NULL AND muted_at IS NULL;
CREATE TABLE IF NOT EXISTS mutes (
    sink TEXT NOT NULL,
    target TEXT NOT NULL,
    until TEXT NOT NULL,
    PRIMARY KEY (sink, target)
) WITHOUT ROWID;
"""


class StateFileRefused(Exception):
    """The file opened but cannot be used: damaged, of another schema, or not writable."""


def claim_state_file(path: Path) -> int:
    """Lock the state file itself for this process: two daemons on one state would alert twice.

    The lock is on the file, not on its name, so a second daemon is refused whichever symlink
    or hard link it was given; a file with more than one hard link is refused. It is a flock(2)
    lock, apart from SQLite's own POSIX locks on the file; the descriptor stays open until the
    store is closed, since closing any descriptor of the file would drop SQLite's locks with it.
    """
    try:
        # Opened for writing, so a file or filesystem that refuses writes is named at once;
        # positions and alerts are private, so a new state file is created owner-only.
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as err:
        raise StateFileRefused(f"cannot open for writing: {err.strerror}") from err
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateFileRefused("in use by another running position-monitor") from None
    links = os.fstat(fd).st_nlink
    if links > 1:
        # SQLite keeps its write-ahead log beside the name it opened: commits made through one
        # name are unseen (and the file at risk) when it is next opened through another.
        os.close(fd)
        raise StateFileRefused(
            f"has {links} hard links; give it exactly one name (a symlink to it is fine)"
        )
    return fd


def open_state_file(path: str) -> sqlite3.Connection:
    """Open (or create) the state file with its tables; raises OSError or sqlite3.Error when
    it cannot be opened, and StateFileRefused when it opened but cannot be used."""
    if path != ":memory:" and not os.path.exists(path):
        # Positions and alerts are private: create the file owner-only before SQLite.
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    # The daemon opens the file at startup and then uses it only from its store thread
    # (docs/architecture.md, "Data flow"): one thread at a time, never two at once.
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        _check(db)
    except BaseException:
        db.close()
        raise
    return db


def open_for_checkpoints(path: str) -> sqlite3.Connection:
    """A second connection to an open state file, for WAL checkpoints only: it never creates
    the file and writes no row; raises sqlite3.Error when it cannot be opened."""
    db = sqlite3.connect(
        Path(path).absolute().as_uri() + "?mode=rw", uri=True, isolation_level=None
    )
    try:
        # Synced as the store's own checkpoints are: the WAL before it is copied, the main file
        # after.
        db.execute("PRAGMA synchronous = NORMAL")
    except BaseException:
        db.close()
        raise
    return db


def _check(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA busy_timeout = 5000")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA foreign_keys = ON")
    damage = _damage(db)
    if damage is not None:
        raise StateFileRefused(
            f"damaged ({damage}); restore it from a backup, or move it away to start from a"
            " fresh baseline"
        )
    db.executescript(SCHEMA)
    version = _schema_version(db)
    if version in MIGRATIONS:
        _migrate(db, version)
        version = SCHEMA_VERSION
    if version != SCHEMA_VERSION:
        raise StateFileRefused(f"schema version {version}, this release reads {SCHEMA_VERSION}")
    try:
        # SQLite quietly opens a file it may not write read-only, and then every poll
        # would fail to commit: one no-op write proves now that polls can be stored.
        db.execute("UPDATE meta SET value = value WHERE key = 'schema'")
    except sqlite3.Error as err:
        raise StateFileRefused(f"cannot write: {err}") from err


def _damage(db: sqlite3.Connection) -> str | None:
    """The first problem SQLite's quick_check finds in the file, or None if it is sound.

    Checked once at start, so a damaged file stops the daemon with its name instead of
    failing poll after poll wherever the damage happens to lie.
    """
    try:
        problems = [str(row[0]) for row in db.execute("PRAGMA quick_check(1)")]
    except sqlite3.DatabaseError as err:
        if err.sqlite_errorcode != sqlite3.SQLITE_CORRUPT:
            raise
        return str(err)  # damage in the pages the check itself reads
    if problems == ["ok"]:
        return None
    # One line: SQLite's report spans lines and opens with a banner naming the schema.
    return " ".join(problems[0].replace("*** in database main ***", "").split())


def _migrate(db: sqlite3.Connection, version: str) -> None:
    """Bring a file of an older ``version`` to this schema in one transaction."""
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute(MIGRATIONS[version])
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (SCHEMA_VERSION,))
        db.execute("COMMIT")
    except sqlite3.Error as err:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise StateFileRefused(
            f"cannot upgrade from schema version {version} to {SCHEMA_VERSION}: {err}"
        ) from err


def _schema_version(db: sqlite3.Connection) -> str:
    row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    if row is None:
        db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        return SCHEMA_VERSION
    return str(row[0])
