"""WAL checkpoints off the commit path: the log stays bounded, no commit is lost, a failing
checkpoint is said once and never reaches the store's callers."""

from __future__ import annotations

import asyncio
import threading
from datetime import date, timedelta
from pathlib import Path

from structlog.testing import capture_logs

from monitor.diff import diff
from monitor.model import Alert, Severity, Snapshot
from monitor.store import Store
from monitor.store_checkpointer import Checkpointer
from monitor.store_thread import StoreThread
from tests.snapshots import ACCOUNT, T0, pos, snap
from tests.waiting import wait_until

DAY = date(2026, 11, 23)
POSITIONS = 200  # every row's MTM moves each poll: about 1 MB of WAL per 40 polls
ROUNDS = 8
POLLS_PER_ROUND = 60


def wal_bytes(path: Path) -> int:
    """The size of the state file's write-ahead log, 0 when there is none."""
    wal = Path(f"{path}-wal")
    return wal.stat().st_size if wal.exists() else 0


def wal_restarts(path: Path) -> int:
    """The WAL header's checkpoint sequence number (bytes 12-15, big-endian; SQLite's file
    format): it goes up each time a writer starts the log again after a whole checkpoint."""
    with open(f"{path}-wal", "rb") as wal:
        return int.from_bytes(wal.read(16)[12:16], "big")


def poll(number: int) -> Snapshot:
    """The ``number``-th poll: every position's MTM is the poll's number."""
    rows = [pos(str(50_000 + n), qty=-25, mtm=number) for n in range(POSITIONS)]
    return snap(*rows, at=T0 + timedelta(seconds=5 * number))


def alert(number: int) -> Alert:
    """One alert per poll, so each commit also adds to the outbox."""
    return Alert(
        "drawdown", "mtm_drawdown", Severity.WARNING, ACCOUNT, None, None,
        T0 + timedelta(seconds=5 * number), f"poll {number}", {},
    )  # fmt: skip


def poll_write(number: int) -> tuple[object, ...]:
    """The ``commit_poll`` arguments of poll ``number`` after poll ``number - 1``."""
    before = poll(number - 1) if number > 0 else None
    current = poll(number)
    return (current, DAY, diff(before, current), {}, [(alert(number), ("console",))])


def commit_synchronously(store: Store) -> list[int]:
    """Every poll of every round committed in this thread; the WAL size after each round."""
    sizes = []
    for number in range(ROUNDS * POLLS_PER_ROUND):
        store.commit_poll(*poll_write(number))  # type: ignore[arg-type]
        if number % POLLS_PER_ROUND == POLLS_PER_ROUND - 1:
            sizes.append(wal_bytes(Path(store.path)))
    return sizes


async def test_the_wal_stays_bounded_and_every_commit_is_kept(tmp_path: Path) -> None:
    """Without automatic checkpoints and without the checkpointer the WAL grows by every round
    of polls; with the store thread's checkpointer it stays within about one round, as with
    SQLite's automatic checkpoints, and a reopened file holds every committed poll and alert."""
    grown = Store(tmp_path / "unchecked.db")
    grown.stop_auto_checkpoints()
    unchecked = commit_synchronously(grown)
    grown.close()
    per_round = unchecked[0]
    bound = 3 * per_round
    assert unchecked[-1] > bound, f"without checkpoints the WAL grows: {unchecked}"

    automatic = Store(tmp_path / "automatic.db")  # as replay and test use it
    assert max(commit_synchronously(automatic)) < bound, "SQLite's own checkpoints bound it"
    automatic.close()

    path = tmp_path / "state.db"
    before = set(threading.enumerate())
    thread = StoreThread(Store(path))
    started = set(threading.enumerate()) - before
    assert {t.name for t in started} == {"state-file", "state-checkpoints"}
    sizes, restarts = [], []
    number = 0
    for _ in range(ROUNDS):
        for _ in range(POLLS_PER_ROUND):
            await thread.commit_poll(*poll_write(number))  # type: ignore[arg-type]
            number += 1
        sizes.append(wal_bytes(path))
        # The checkpointer copies this round in the background; the first commit after a
        # whole checkpoint starts the log again. Small writes wait for that.
        restarted = wal_restarts(path)
        try:
            async with asyncio.timeout(60):
                while wal_restarts(path) == restarted:
                    await thread.set_meta("tick", str(number))
                    await asyncio.sleep(0.02)
        except TimeoutError:
            raise AssertionError(f"no checkpoint let the WAL start again: {sizes}") from None
        restarts.append(wal_restarts(path))
    assert len(set(restarts)) == ROUNDS, f"the WAL started again after each round: {restarts}"
    assert max(sizes) < bound, f"WAL sizes {sizes} against {bound} (one round: {per_round})"
    assert await thread.close(60)
    assert not any(t.is_alive() for t in started if t.name == "state-checkpoints"), (
        "the checkpointer stopped before the file closed"
    )
    assert wal_bytes(path) == 0, "the last connection's close copied the WAL into the file"

    reopened = Store(path)
    try:
        stored = reopened.load_account(ACCOUNT)
        assert stored is not None
        assert stored.snapshot.positions == poll(number - 1).positions, "the last poll is kept"
        assert [a.message for a in reopened.alerts()] == [f"poll {n}" for n in range(number)]
    finally:
        reopened.close()


async def test_a_failing_checkpoint_is_said_once_counted_each_time_and_recovers(
    tmp_path: Path,
) -> None:
    """A file SQLite cannot checkpoint fails every attempt: each is counted, one warning names
    the path and the kind, nothing is raised; once the file can be checkpointed one line says
    so."""
    path = tmp_path / "state.db"
    path.write_bytes(b"not a database " * 400)
    failures: list[int] = []
    with capture_logs() as logs:
        checkpointer = Checkpointer(str(path), failed=lambda: failures.append(1))
        try:
            async with asyncio.timeout(60):
                while len(failures) < 3:
                    checkpointer.wrote()
                    await asyncio.sleep(0.02)
            failed = [e for e in logs if e["event"] == "state_checkpoint_failed"]
            assert len(failed) == 1, failed
            assert failed[0]["path"] == str(path)
            assert failed[0]["kind"] == "SQLITE_NOTADB"
            assert failed[0]["log_level"] == "warning"

            good = tmp_path / "good.db"
            store = Store(good)
            store.set_meta("k", "v")
            store.close()
            good.replace(path)

            def recovered() -> bool:
                checkpointer.wrote()
                return any(e["event"] == "state_checkpoint_recovered" for e in logs)

            await wait_until(recovered, "a checkpoint succeeded on the sound file")
        finally:
            assert checkpointer.close(60), "the checkpointer stopped"
    assert len(failures) >= 3
    assert [e["event"] for e in logs].count("state_checkpoint_failed") == 1
