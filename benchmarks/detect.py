"""Detection latency: from a positions body read off the wire to its alerts committed.

Each poll is timed on the daemon's path: from the moment the positions body and the prices of
its quotes calls are in hand (the quotes round trips are the broker's time, not the monitor's)
to the moment ``await LiveEngine.ingest`` returns in an asyncio loop, that is, once the store's
own thread has committed the poll (changed rows, rule states, alerts and their pending
deliveries) to a real SQLite file in a temporary directory, WAL mode as the daemon runs it, with
its checkpointer copying the WAL into the main file beside the commits. The polls alternate
between two bodies of 1,000 positions that differ in 5% of the rows, so every poll changes
positions and raises alerts. A body is decoded and priced as the live client does it: rows
repeated byte for byte from the last body reuse their decoding, and with the same price their
position.

``detect_p99_over_floor`` sets the p99 against the floor of the same body (msgspec decoding it
into typed Structs, as in the pipeline benchmark), timed just before each poll, so a busy
moment of the machine weighs on both.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from benchmarks.data import Alternating, make_alternating
from benchmarks.pipeline import ACCOUNT, FIRST_AT, FLOOR, IST, ROOT
from benchmarks.timing import percentile
from monitor import config
from monitor.brokers import kotak_neo
from monitor.config import SinkConfig
from monitor.daemon import CLOSE_SECONDS
from monitor.engine import LiveEngine
from monitor.model import Snapshot
from monitor.rules.base import Rule
from monitor.store import Store
from monitor.store_thread import StoreThread

POSITIONS = 1_000
POLLS = 1_000
REPEAT = 3  # runs of POLLS polls, each on a fresh state file; the figure is their median p99


def run() -> dict[str, float]:
    """The median over ``REPEAT`` runs of the p99 of ``POLLS`` timed polls, in milliseconds,
    and over the floor's median in each run, with each run's p99, the p50 and the worst poll."""
    data = make_alternating(POSITIONS)
    loaded = config.load(ROOT / "rules.yaml")
    runs = [asyncio.run(_timed_polls(data, loaded.rules, loaded.sinks)) for _ in range(REPEAT)]
    p99s = [percentile(times, 0.99) * 1e3 for times, _ in runs]
    ratios = [percentile(times, 0.99) / statistics.median(floors) for times, floors in runs]
    figures = {"detect_p99_ms": statistics.median(p99s)}
    figures["detect_p99_over_floor"] = statistics.median(ratios)
    figures.update({f"detect_p99_run{n}_ms": p99 for n, p99 in enumerate(p99s, 1)})
    figures["detect_floor_ms"] = statistics.median(f for _, floors in runs for f in floors) * 1e3
    every = [t for times, _ in runs for t in times]
    figures["detect_p50_ms"] = percentile(every, 0.50) * 1e3
    figures["detect_max_ms"] = max(every) * 1e3
    return figures


async def _timed_polls(
    data: Alternating, rules: Sequence[Rule], sinks: Sequence[SinkConfig]
) -> tuple[list[float], list[float]]:
    """Seconds from body to commit of each poll after a baseline, on a fresh state file, and
    of the floor decode of each poll's body."""
    with tempfile.TemporaryDirectory(prefix="pm-bench-") as tmp:
        store = StoreThread(Store(Path(tmp) / "state.db"))
        try:
            engine = LiveEngine(store, rules, sinks)
            rows, known = kotak_neo.decode_rows(data.first, ACCOUNT, {})
            positions = kotak_neo.price(rows, data.quotes)
            await engine.ingest(Snapshot(ACCOUNT, kotak_neo.BROKER, FIRST_AT, positions), IST)
            times, floors = [], []
            for index in range(1, POLLS + 1):
                body = data.odd if index % 2 else data.even
                at = FIRST_AT + timedelta(seconds=5 * index)
                start = time.perf_counter()
                FLOOR.decode(body)
                floors.append(time.perf_counter() - start)
                start = time.perf_counter()
                last = (rows, positions)
                rows, known = kotak_neo.decode_rows(body, ACCOUNT, known)
                positions = kotak_neo.price(rows, data.quotes, last)
                snapshot = Snapshot(ACCOUNT, kotak_neo.BROKER, at, positions)
                evaluation = await engine.ingest(snapshot, IST)
                times.append(time.perf_counter() - start)
                if not evaluation.alerts:
                    raise RuntimeError(f"poll {index} raised no alert: the data cannot time one")
        finally:
            if not await store.close(CLOSE_SECONDS):
                raise RuntimeError("the state file did not close in time")
    return times, floors
