"""Detection latency: from a positions body read off the wire to its alerts committed.

Each poll is timed from the moment the body is in hand to the moment ``Engine.ingest`` has
committed the poll (changed rows, rule states, alerts and their pending deliveries) to a real
SQLite file in a temporary directory, WAL mode as the daemon runs it. The polls alternate
between two bodies of 1,000 positions that differ in 5% of the rows, so every poll changes
positions and raises alerts.
"""

from __future__ import annotations

import tempfile
import time
from datetime import timedelta
from pathlib import Path

from benchmarks.data import make_alternating
from benchmarks.pipeline import ACCOUNT, FIRST_AT, IST, ROOT
from benchmarks.timing import percentile
from monitor import config
from monitor.brokers import kotak_neo
from monitor.engine import Engine
from monitor.store import Store

POSITIONS = 1_000
POLLS = 1_000


def run() -> dict[str, float]:
    """p99, p50 and the worst of ``POLLS`` timed polls, in milliseconds."""
    data = make_alternating(POSITIONS)
    loaded = config.load(ROOT / "rules.yaml")
    with tempfile.TemporaryDirectory(prefix="pm-bench-") as tmp:
        store = Store(Path(tmp) / "state.db")
        try:
            engine = Engine(store, loaded.rules, loaded.sinks)
            first = kotak_neo.parse(
                data.first, account=ACCOUNT, taken_at=FIRST_AT, quotes=data.quotes
            )
            engine.ingest(first, IST)
            times = []
            for index in range(1, POLLS + 1):
                body = data.odd if index % 2 else data.even
                at = FIRST_AT + timedelta(seconds=5 * index)
                start = time.perf_counter()
                snapshot = kotak_neo.parse(body, account=ACCOUNT, taken_at=at, quotes=data.quotes)
                evaluation = engine.ingest(snapshot, IST)
                times.append(time.perf_counter() - start)
                if not evaluation.alerts:
                    raise RuntimeError(f"poll {index} raised no alert: the data cannot time one")
        finally:
            store.close()
    return {
        "detect_p99_ms": percentile(times, 0.99) * 1e3,
        "detect_p50_ms": percentile(times, 0.50) * 1e3,
        "detect_max_ms": max(times) * 1e3,
    }
