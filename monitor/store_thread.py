"""The state file on a thread of its own: the daemon awaits every SQLite call, none runs on the
loop.

A slow disk, an fsync or another process's lock on the file holds up the store's thread, never
the event loop: polls of other accounts, ``/metrics``, ``/healthz``, Telegram commands and the
outbox lanes go on while a commit waits. Calls run one at a time in the order they were made, so
a poll's commit is in the file before the outbox can read its alerts, and alerts enter the
outbox in commit order. A call waits on a locked file for SQLite's busy timeout (5 s), then fails
with a ``StoreError`` like any other (see README, "Reliability").

Commits do not checkpoint the WAL: a ``Checkpointer`` does, on a connection and a thread of
its own, after the calls that wrote, so no commit waits on a checkpoint's copy and sync (see
``monitor.store_checkpointer``).

A call still queued when its caller is cancelled is dropped; one already running completes.
``close`` drains the queue within a deadline, stops the checkpointer, then closes the file,
which checkpoints the WAL into the main file. The threads are daemon threads, so a call stuck
on a lock past the deadline cannot hold up the process's exit (SQLite then discards its open
transaction, as after a kill).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from datetime import date, datetime
from typing import Any, ParamSpec, TypeVar

import structlog

from monitor.model import Alert, Change, PositionKey, Snapshot
from monitor.store import EntryWrite, PendingAlert, Store, StoredAccount
from monitor.store_checkpointer import Checkpointer

log = structlog.get_logger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

_Call = tuple[Future[Any], Callable[[], Any]]

UNUSED_CLOSE_SECONDS = 1.0  # for a checkpointer that never ran to stop, at once in practice


class StoreThread:
    """A ``Store`` used only from one thread; its methods are the store's, awaitable.

    ``queued(delta)`` is told of every call entering (+1) and leaving (-1) the thread's queue,
    for the gauge of calls waiting on the state file; ``checkpoint_failed()`` of every WAL
    checkpoint that failed.
    """

    def __init__(
        self,
        store: Store,
        *,
        queued: Callable[[int], None] = lambda delta: None,
        checkpoint_failed: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.path = store.path
        self._queued = queued
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        store.stop_auto_checkpoints()  # before any call: from now on the checkpointer's work
        self._checkpointer = Checkpointer(store.path, failed=checkpoint_failed)
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="state-file", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        written = self.store.total_changes
        while (call := self._calls.get()) is not None:
            future, work = call
            if not future.set_running_or_notify_cancel():
                continue  # its caller was cancelled before the call started
            try:
                result = work()
            except BaseException as err:  # handed to the awaiting caller, raised there
                future.set_exception(err)
            else:
                future.set_result(result)
            if not self._closed and self.store.total_changes != written:
                written = self.store.total_changes
                self._checkpointer.wrote()

    async def _run(self, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``work`` on the thread, after every call made before it; await its result."""
        future: Future[T] = Future()
        self._queued(1)
        future.add_done_callback(lambda _: self._queued(-1))
        self._calls.put((future, lambda: work(*args, **kwargs)))
        return await asyncio.wrap_future(future)

    def wait(self, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``work`` on the thread and block until it is done: for startup only, before the
        loop serves anything."""
        future: Future[T] = Future()
        self._calls.put((future, lambda: work(*args, **kwargs)))
        return future.result()

    async def close(self, deadline: float) -> bool:
        """Let the calls already made finish, stop the checkpointer, then close the file; False
        when that took longer than ``deadline`` seconds (the threads are left to the process's
        exit)."""
        until = time.monotonic() + deadline
        try:
            async with asyncio.timeout(deadline):
                await self._run(self._close_file, until)
        except TimeoutError:
            log.warning("state_file_close_timed_out", seconds=deadline)
            return False
        finally:
            self._calls.put(None)
        return True

    def close_unused(self) -> None:
        """Close the file when startup failed before any call was made."""
        self.wait(self._close_file, time.monotonic() + UNUSED_CLOSE_SECONDS)
        self._calls.put(None)

    def _close_file(self, until: float) -> None:
        """Stop the checkpointer by ``until`` (monotonic), then close the file: the last
        connection to close copies the WAL into the main file and removes it."""
        self._closed = True
        if not self._checkpointer.close(max(0.0, until - time.monotonic())):
            log.warning("state_checkpoints_close_timed_out", path=self.path)
        self.store.close()

    async def load_account(self, account: str) -> StoredAccount | None:
        """``Store.load_account`` on the thread."""
        return await self._run(self.store.load_account, account)

    async def commit_poll(
        self,
        snapshot: Snapshot,
        trading_day: date,
        changes: Iterable[Change],
        rule_states: Mapping[str, object],
        alerts: Sequence[tuple[Alert, Sequence[str]]],
        rule_entries: Mapping[str, EntryWrite] | None = None,
        carried_flipped: Iterable[PositionKey] = (),
    ) -> None:
        """``Store.commit_poll`` on the thread: one transaction, all of the poll or none."""
        await self._run(
            self.store.commit_poll, snapshot, trading_day, changes, rule_states, alerts,
            rule_entries, carried_flipped,
        )  # fmt: skip

    async def commit_alerts(
        self, alerts: Sequence[tuple[Alert, Sequence[str]]], meta: Mapping[str, str] | None = None
    ) -> None:
        """``Store.commit_alerts`` on the thread."""
        await self._run(self.store.commit_alerts, alerts, meta)

    async def pending(self, sink: str, limit: int = 100) -> list[PendingAlert]:
        """``Store.pending`` on the thread."""
        return await self._run(self.store.pending, sink, limit)

    async def mark_delivered(self, alert_ids: Sequence[int], sink: str, at: datetime) -> None:
        """``Store.mark_delivered`` on the thread."""
        await self._run(self.store.mark_delivered, alert_ids, sink, at)

    async def mark_muted(
        self, alert_ids: Sequence[int], sink: str, reason: str, at: datetime
    ) -> None:
        """``Store.mark_muted`` on the thread."""
        await self._run(self.store.mark_muted, alert_ids, sink, reason, at)

    async def mark_attempt_failed(self, alert_id: int, sink: str, reason: str) -> None:
        """``Store.mark_attempt_failed`` on the thread."""
        await self._run(self.store.mark_attempt_failed, alert_id, sink, reason)

    async def mark_undeliverable(self, alert_id: int, sink: str, reason: str, at: datetime) -> None:
        """``Store.mark_undeliverable`` on the thread."""
        await self._run(self.store.mark_undeliverable, alert_id, sink, reason, at)

    async def drop_rule_states(self, rules: Sequence[str]) -> None:
        """``Store.drop_rule_states`` on the thread."""
        await self._run(self.store.drop_rule_states, rules)

    async def park_sink(self, sink: str, reason: str, at: datetime) -> int:
        """``Store.park_sink`` on the thread."""
        return await self._run(self.store.park_sink, sink, reason, at)

    async def outbox_depth(self) -> dict[str, int]:
        """``Store.outbox_depth`` on the thread."""
        return await self._run(self.store.outbox_depth)

    async def mute(self, sinks: Sequence[str], target: str, until: datetime) -> None:
        """``Store.mute`` on the thread."""
        await self._run(self.store.mute, sinks, target, until)

    async def unmute(self, sinks: Sequence[str], target: str | None = None) -> int:
        """``Store.unmute`` on the thread."""
        return await self._run(self.store.unmute, sinks, target)

    async def mutes(self, sink: str, now: datetime) -> dict[str, datetime]:
        """``Store.mutes`` on the thread."""
        return await self._run(self.store.mutes, sink, now)

    async def get_meta(self, key: str) -> str | None:
        """``Store.get_meta`` on the thread."""
        return await self._run(self.store.get_meta, key)

    async def set_meta(self, key: str, value: str) -> None:
        """``Store.set_meta`` on the thread."""
        await self._run(self.store.set_meta, key, value)
