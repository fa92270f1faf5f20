"""Faults of the state file: locked, read-only, disk full, damaged.

Expected: a clear error every time, never a silent skip. At start the daemon refuses with exit
status 1 and one line naming the file and the reason. While running, a poll whose result cannot
be stored is a failed poll (``state_error``: counted, logged once with the reason) and is tried
again at the next interval; the change it carried is reported once the file takes writes again.

"Disk full" is a real full filesystem: a 1 MiB tmpfs mounted for the test and filled to the last
page (mounting needs root, as in CI; elsewhere that test is skipped and says why). "Read-only" is
a state file the daemon's user may not write (the daemon runs as an unprivileged user when the
suite runs as root, since root writes any file), and the same tmpfs remounted read-only.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.store import Store
from tests.fakes import portfolio, serve
from tests.reliability.harness import (
    PORTFOLIO_TOKEN,
    Daemon,
    Harness,
    held_write_lock,
    kinds,
    portfolio_account,
    query,
    stored_alerts,
    until,
)
from tests.test_store import garble_table

NOBODY = 65534


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory outside pytest's owner-only tree, usable by an unprivileged daemon."""
    path = Path(tempfile.mkdtemp(prefix="pm-rel-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def small_fs(open_dir: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: a filesystem that really fills up."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0777", "tmpfs", str(open_dir)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield open_dir
    finally:
        subprocess.run(["umount", "-l", str(open_dir)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the filesystem has no page left."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as out:
        for chunk in (65536, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    out.write(b"\0" * chunk)
    with pytest.raises(OSError, match="No space left on device") as full:
        (directory / "probe").write_bytes(b"\0" * 4096)
    assert full.value.errno == errno.ENOSPC
    return filler


def long_rows(count: int) -> list[dict[str, Any]]:
    """``count`` long positions of distinct instruments, shaped like the seed's row."""
    return [
        {**portfolio.SEED_ROWS[0], "tok": str(90_000 + n), "ts": f"LONG{n}-EQ"}
        for n in range(count)
    ]


async def remount(directory: Path, mode: str) -> None:
    """Remount the test's tmpfs read-only (``ro``) or writable again (``rw``)."""
    process = await asyncio.create_subprocess_exec("mount", "-o", f"remount,{mode}", str(directory))
    assert await process.wait() == 0


async def state_errors_once_recovered(daemon: Daemon, fake: portfolio.PortfolioState) -> float:
    """The polls counted as state_error, read once the alert they held back is out and two
    more polls have passed."""
    await daemon.wait_alerts(1)
    seen = len(fake.requests)
    await until(lambda: len(fake.requests) >= seen + 2, "two more polls")
    return await daemon.sample("position_monitor_polls_total", account="p1", outcome="state_error")


def refusal(daemon: Daemon) -> str:
    """The one line a daemon that refused to start printed."""
    assert not daemon.events("daemon_started")
    return daemon.log_lines[-1]


async def test_read_only_state_file_is_refused_at_start(harness: Harness, open_dir: Path) -> None:
    """A state file the daemon may read but not write: exit 1, no poll at all."""
    state = open_dir / "state.db"
    Store(state).close()
    state.chmod(0o444)
    user = NOBODY if os.geteuid() == 0 else None
    fake = portfolio.PortfolioState(token=PORTFOLIO_TOKEN)
    async with serve(portfolio.make_app(fake)) as base:
        config = harness.rules([portfolio_account(base)])
        shutil.copy(config, open_dir / "rules.yaml")
        daemon = harness.daemon(open_dir / "rules.yaml", state, user=user)
        assert await daemon.exit_code() == 1
    assert refusal(daemon) == (
        f"position-monitor: state file {state}: cannot open for writing: Permission denied"
    )
    assert fake.requests == []


async def test_locked_state_file(harness: Harness) -> None:
    """Another daemon on the file: the second exits 1. A foreign write lock held past the
    5 s busy timeout: the poll fails as state_error, and the short made meanwhile is reported
    once the lock is gone."""
    fake = portfolio.PortfolioState(token=PORTFOLIO_TOKEN)
    state = harness.tmp / "state.db"
    async with serve(portfolio.make_app(fake)) as base:
        config = harness.rules([portfolio_account(base)])
        daemon = harness.daemon(config, state)
        await daemon.started()
        await daemon.wait_event("baseline_taken")

        second = harness.daemon(config, state)
        assert await second.exit_code() == 1
        assert refusal(second) == (
            f"position-monitor: state file {state}: in use by another running position-monitor"
        )

        with held_write_lock(state):
            fake.rows[0]["netQty"] = "-10"
            locked_at = time.monotonic()
            await daemon.wait_event("poll_failed", seconds=60)  # read off stderr, not /metrics
            failed_after = time.monotonic() - locked_at
        failed = await state_errors_once_recovered(daemon, fake)
        assert await daemon.sigterm() == 0

    assert failed >= 1
    assert failed_after >= 5.0, "the commit waited out the 5 s busy timeout first"
    [event] = daemon.events("poll_failed")
    assert event["outcome"] == "state_error"
    assert event["reason"] == f"state file {state}: database is locked"
    assert kinds(daemon.alerts()) == [("fresh-short", "RELIANCE-EQ")]
    assert daemon.alerts() == stored_alerts(state)


async def test_second_daemon_through_a_symlink_or_a_hard_link_is_refused(
    harness: Harness,
) -> None:
    """The lock is on the file, not its name: a daemon given a symlink or a hard link to a
    state file in use exits 1, and the first daemon goes on alone."""
    fake = portfolio.PortfolioState(token=PORTFOLIO_TOKEN)
    state = harness.tmp / "state.db"
    symlink, hard_link = harness.tmp / "via-symlink.db", harness.tmp / "via-hard-link.db"
    async with serve(portfolio.make_app(fake)) as base:
        config = harness.rules([portfolio_account(base)])
        daemon = harness.daemon(config, state)
        await daemon.started()
        await daemon.wait_event("baseline_taken")
        symlink.symlink_to(state)
        hard_link.hardlink_to(state)

        refused = []
        for link in (symlink, hard_link):
            second = harness.daemon(config, link)
            assert await second.exit_code() == 1
            refused.append(refusal(second))
        fake.rows[0]["netQty"] = "-10"
        await daemon.wait_alerts(1)
        assert await daemon.sigterm() == 0

    assert refused == [
        f"position-monitor: state file {link}: in use by another running position-monitor"
        for link in (symlink, hard_link)
    ]
    assert kinds(daemon.alerts()) == [("fresh-short", "RELIANCE-EQ")]


async def test_disk_full_then_freed_and_a_read_only_filesystem(
    harness: Harness, small_fs: Path
) -> None:
    """The filesystem fills up: polls fail as state_error ("database or disk is full"), a new
    daemon refuses to start; space comes back: the short is reported once. Then the same
    filesystem read-only: the daemon refuses to start."""
    harness.also_check(small_fs)
    state = small_fs / "state.db"
    fake = portfolio.PortfolioState(token=PORTFOLIO_TOKEN)
    async with serve(portfolio.make_app(fake)) as base:
        config = harness.rules([portfolio_account(base)])
        daemon = harness.daemon(config, state)
        await daemon.started()
        await daemon.wait_event("baseline_taken")

        filler = fill(small_fs)
        fake.rows[0]["netQty"] = "-10"
        # Long rows that raise no alert, so the poll's commit needs more pages than the WAL
        # already holds: a small commit would reuse the log's space after a checkpoint.
        fake.rows += long_rows(3_000)
        await daemon.wait_sample("position_monitor_state_write_failures_total", 3)
        assert daemon.alerts() == []
        other = harness.daemon(config, small_fs / "other.db")
        assert await other.exit_code() == 1
        full_at_start = refusal(other)

        filler.unlink()
        failed = await state_errors_once_recovered(daemon, fake)
        assert await daemon.sigterm() == 0

        await remount(small_fs, "ro")
        try:
            read_only = harness.daemon(config, state)
            assert await read_only.exit_code() == 1
        finally:
            await remount(small_fs, "rw")

    assert failed >= 3
    [event] = daemon.events("poll_failed")
    assert event["outcome"] == "state_error"
    assert event["reason"] == f"state file {state}: database or disk is full"
    assert full_at_start == (
        f"position-monitor: state file {small_fs / 'other.db'}: database or disk is full"
    )
    assert kinds(daemon.alerts()) == [("fresh-short", "RELIANCE-EQ")]
    assert daemon.alerts() == stored_alerts(state)
    assert query(state, "PRAGMA integrity_check") == [("ok",)]
    assert refusal(read_only) == (
        f"position-monitor: state file {state}: cannot open for writing: Read-only file system"
    )


async def test_a_damaged_state_file_is_refused_at_start(harness: Harness) -> None:
    """A page of the file overwritten with garbage: exit 1 with one line naming the file,
    before any request to the broker."""
    state = harness.tmp / "state.db"
    Store(state).close()
    with contextlib.closing(sqlite3.connect(state)) as db:  # closed: checkpointed into the file
        db.executemany(  # enough alerts for a table of several pages
            "INSERT INTO alerts (account, rule, payload) VALUES ('p1', 'r', ?)",
            [(json.dumps({"n": n, "message": "x" * 100}),) for n in range(200)],
        )
        db.commit()
    garble_table(state, "alerts")
    fake = portfolio.PortfolioState(token=PORTFOLIO_TOKEN)
    async with serve(portfolio.make_app(fake)) as base:
        daemon = harness.daemon(harness.rules([portfolio_account(base)]), state)
        assert await daemon.exit_code() == 1
    line = refusal(daemon)
    assert line.startswith(f"position-monitor: state file {state}: damaged (")
    assert line.endswith("restore it from a backup, or move it away to start from a fresh baseline")
    assert fake.requests == []


async def test_bad_stored_values_are_state_errors_and_skipped_alerts(harness: Harness) -> None:
    """A stored quantity that is not a number: every poll of the account counts as state_error,
    logged once naming the table, column and row. An outbox alert that does not decode is
    parked, logged and counted; the alert queued behind it is still delivered."""
    fake = portfolio.PortfolioState(token=PORTFOLIO_TOKEN)
    state = harness.tmp / "state.db"
    async with serve(portfolio.make_app(fake)) as base:
        config = harness.rules([portfolio_account(base)])
        first = harness.daemon(config, state)
        await first.started()
        await first.wait_event("baseline_taken")
        fake.rows[0]["netQty"] = "-10"
        [short] = await first.wait_alerts(1)
        assert await first.sigterm() == 0

        with contextlib.closing(sqlite3.connect(state)) as db, db:
            db.execute("UPDATE positions SET net_qty = 'ten'")
            for payload in ("{broken", json.dumps(short)):
                row = db.execute(
                    "INSERT INTO alerts (account, rule, payload) VALUES ('p1', 'fresh-short', ?)",
                    (payload,),
                )
                db.execute(
                    "INSERT INTO deliveries (alert_id, sink) VALUES (?, 'console')",
                    (row.lastrowid,),
                )
        second = harness.daemon(config, state)
        await second.started()
        failed = await second.wait_event("poll_failed")
        await second.wait_sample(
            "position_monitor_polls_total", 3, account="p1", outcome="state_error"
        )
        unreadable = await second.wait_sample(
            "position_monitor_outbox_unreadable_total", 1, sink="console"
        )
        await second.wait_alerts(1)
        assert await second.sigterm() == 0

    assert failed["outcome"] == "state_error"
    assert failed["reason"] == (
        f"state file {state}: positions.net_qty of account 'p1', position 'nse_cm' '11536'"
        " '': 'ten' does not decode (not a number)"
    )
    assert len(second.events("poll_failed")) == 1, "logged once"
    assert unreadable == 1
    [said] = second.events("outbox_alert_unreadable")
    assert (said["sink"], said["field"]) == ("console", "alerts.payload")
    assert second.alerts() == [short]
    assert not second.events("poll_crashed")
