"""Resident memory per tracked position: 100 accounts of 1,000 positions, as the daemon holds
them: the engine's last snapshot and rule states, and each Kotak client's decoded rows.

Run as its own process (``python -m benchmarks.memory``) so nothing else lives in its heap. The
resident set is read from /proc/self/statm after a warm-up poll through a throwaway engine, and
again once every account has been polled twice (a baseline, then a poll that replaces it, as
in the daemon) and the garbage collector has run. Prints one JSON object.
"""

from __future__ import annotations

import gc
import json
import os
import random
import tempfile
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from benchmarks.data import body, make_quotes, make_rows
from benchmarks.pipeline import FIRST_AT, IST, ROOT
from monitor import config
from monitor.brokers import kotak_neo
from monitor.engine import Engine
from monitor.store import Store

ACCOUNTS = 100
POSITIONS = 1_000


def resident_bytes() -> int:
    """The process's resident set size."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def poll(engine: Engine, account: int, polls: int) -> Sequence[object]:
    """``polls`` polls of one generated account, its body made and dropped like a response;
    the decoded rows, which the account's client keeps (its body did not change between the
    polls, so the client decoded it once)."""
    rng = random.Random(account)
    rows = make_rows(rng, POSITIONS, first_token=10_000 + account * POSITIONS)
    raw, quotes = body(rows), make_quotes(rng, rows)
    del rows
    name = f"acct-{account:03d}"
    decoded = kotak_neo.decode(raw, name)
    for index in range(polls):
        snapshot = kotak_neo.build(
            decoded, account=name, taken_at=FIRST_AT + timedelta(seconds=5 * index), quotes=quotes
        )
        engine.ingest(snapshot, IST)
    return decoded


def run() -> dict[str, float]:
    """Resident growth per position held."""
    loaded = config.load(ROOT / "rules.yaml")
    with tempfile.TemporaryDirectory(prefix="pm-bench-") as tmp:
        warm = Store(Path(tmp) / "warm.db")
        poll(Engine(warm, loaded.rules, loaded.sinks), ACCOUNTS, 2)
        warm.close()
        store = Store(Path(tmp) / "state.db")
        engine = Engine(store, loaded.rules, loaded.sinks)
        gc.collect()
        before = resident_bytes()
        # Each client keeps its rows, so they are held here until the second reading.
        clients_rows = [poll(engine, account, 2) for account in range(ACCOUNTS)]
        gc.collect()
        after = resident_bytes()
        held = 0
        for account in range(ACCOUNTS):
            snapshot = engine.last_snapshot(f"acct-{account:03d}")
            held += len(snapshot.positions) if snapshot is not None else 0
        store.close()
    return {
        "rss_bytes_per_position": (after - before) / held,
        "rss_growth_mib": (after - before) / 2**20,
        "rss_positions": held,
        "rss_client_rows": sum(len(rows) for rows in clients_rows),
    }


if __name__ == "__main__":
    print(json.dumps(run()))
