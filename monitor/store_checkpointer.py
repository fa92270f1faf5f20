"""WAL checkpoints of the state file off the commit path: a connection and a thread of their own.

SQLite's automatic checkpoint runs inside the commit that takes the WAL past 1,000 pages and
syncs the file there, so about one poll in twenty waited on it. The daemon's store connection
commits with automatic checkpoints off, and this thread copies the WAL into the main file
instead with ``PRAGMA wal_checkpoint(PASSIVE)``: a passive checkpoint takes no write lock and
waits on no lock (SQLite never calls the busy handler in that mode), so a commit never waits
for it; it copies what it can and leaves the rest to the next one. Once a checkpoint has copied
the whole WAL, the next commit writes the WAL from its start again, so the file stays about as
large as what is written between two checkpoints.

Writes are coalesced: at most one checkpoint a second while writes come, and the next one as
soon as a write comes when the last found 1,000 pages or more (the WAL filling faster than one
checkpoint a second keeps up with). A checkpoint that fails (a disk error, a file that can no
longer be opened) never reaches the store's callers: it is counted, logged once per kind of
failure until a checkpoint succeeds again, and tried again after the next write with a fresh
connection. Until then the WAL grows and commits go on.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable

import structlog

from monitor.store_schema import open_for_checkpoints

log = structlog.get_logger(__name__)

INTERVAL_SECONDS = 1.0  # at most one checkpoint this often while writes come...
PROMPT_PAGES = 1_000  # ...unless the last found this many pages: SQLite's own threshold


class Checkpointer:
    """Checkpoints the WAL of the state file at ``path`` on a thread of its own, after writes.

    ``failed()`` is called for every checkpoint that failed.
    """

    def __init__(self, path: str, *, failed: Callable[[], None] = lambda: None) -> None:
        self.path = path
        self._failed = failed
        self._db: sqlite3.Connection | None = None
        self._failing: set[str] = set()  # the kinds of failure logged since the last success
        self._wrote = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="state-checkpoints", daemon=True)
        self._thread.start()

    def wrote(self) -> None:
        """Rows were committed: the WAL is checkpointed within the interval."""
        self._wrote.set()

    def close(self, timeout: float) -> bool:
        """Stop, closing the connection; False when the thread did not end within ``timeout``
        seconds (a checkpoint stuck on the disk, left to the process's exit)."""
        self._stopping.set()
        self._wrote.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _serve(self) -> None:
        last = -INTERVAL_SECONDS
        prompt = False
        try:
            while True:
                self._wrote.wait()
                if not prompt:  # the writes of the rest of the interval join this checkpoint
                    self._stopping.wait(max(0.0, last + INTERVAL_SECONDS - time.monotonic()))
                if self._stopping.is_set():
                    return
                self._wrote.clear()
                last = time.monotonic()
                prompt = self._checkpoint() >= PROMPT_PAGES
        finally:
            self._drop_connection()

    def _checkpoint(self) -> int:
        """One passive checkpoint; the pages in the WAL, 0 when it failed."""
        try:
            if self._db is None:
                self._db = open_for_checkpoints(self.path)
            # (busy, pages in the WAL, pages copied): busy or a partial copy is another
            # connection at work, not a failure; the next checkpoint copies the rest.
            _, pages, _ = self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as err:
            self._fail(err)
            return 0
        if self._failing:
            self._failing.clear()
            log.info("state_checkpoint_recovered", path=self.path)
        return int(pages)

    def _fail(self, err: sqlite3.Error) -> None:
        self._failed()
        self._drop_connection()  # a file replaced or a descriptor gone: the next one reopens
        kind = getattr(err, "sqlite_errorname", None) or type(err).__name__
        if kind not in self._failing:
            self._failing.add(kind)
            log.warning("state_checkpoint_failed", path=self.path, kind=kind, error=str(err))

    def _drop_connection(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            with contextlib.suppress(sqlite3.Error):  # a broken connection: nothing to lose
                db.close()
