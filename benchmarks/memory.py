"""Resident memory per tracked position: 100 accounts of 1,000 positions held by the engine.

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


def poll(engine: Engine, account: int, polls: int) -> None:
    """``polls`` polls of one generated account, its body made and dropped like a response."""
    rng = random.Random(account)
    rows = make_rows(rng, POSITIONS, first_token=10_000 + account * POSITIONS)
    raw, quotes = body(rows), make_quotes(rng, rows)
    del rows
    for index in range(polls):
        snapshot = kotak_neo.parse(
            raw,
            account=f"acct-{account:03d}",
            taken_at=FIRST_AT + timedelta(seconds=5 * index),
            quotes=quotes,
        )
        engine.ingest(snapshot, IST)


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
        for account in range(ACCOUNTS):
            poll(engine, account, 2)
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
    }


if __name__ == "__main__":
    print(json.dumps(run()))
