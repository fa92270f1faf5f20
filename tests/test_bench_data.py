"""The benchmarks' generated bodies are real Kotak bodies: the parser takes them, row for row.

``make bench`` is not part of ``make test``; this keeps its data from drifting away from what
the parser accepts, so the benchmarks cannot silently time an error path, and runs the scale
figure on a few accounts so its plumbing (the daemon's lag histogram, /proc) keeps working.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from benchmarks import scale
from benchmarks.data import CHANGED_SHARE, make_alternating, make_data, net_qty
from monitor.brokers import kotak_neo
from monitor.diff import diff
from monitor.model import ChangeKind, Snapshot

AT = datetime(2026, 12, 1, 10, 0, tzinfo=ZoneInfo("Asia/Kolkata"))
N = 1_000
ROOT = Path(__file__).resolve().parent.parent


def parse(body: bytes, quotes: dict[str, Decimal]) -> Snapshot:
    return kotak_neo.parse(body, account="bench", taken_at=AT, quotes=quotes)


def test_bodies_parse_with_every_row_and_five_percent_changed() -> None:
    data = make_data(N)
    first, second = parse(data.first, data.quotes), parse(data.second, data.quotes)

    assert len(first.positions) == len(second.positions) == N == data.rows
    changes = diff(first, second)
    assert {change.kind for change in changes} == {ChangeKind.CHANGED}
    assert len(changes) == data.changed == round(N * CHANGED_SHARE)


def test_every_open_row_is_priced_and_some_changes_turn_short_or_flat() -> None:
    data = make_data(N)
    first, second = parse(data.first, data.quotes), parse(data.second, data.quotes)

    assert all(p.mtm is not None for p in second.positions.values())
    assert any(p.net_qty == 0 for p in first.positions.values())
    kinds = set()
    for change in diff(first, second):
        before, after = change.before, change.after
        assert before is not None and after is not None
        if before.net_qty >= 0 > after.net_qty:
            kinds.add("new short")
        elif before.net_qty != 0 == after.net_qty:
            kinds.add("squared off")
    assert kinds == {"new short", "squared off"}


def test_alternating_bodies_differ_in_five_percent_of_rows() -> None:
    data = make_alternating(N)
    odd, even = parse(data.odd, data.quotes), parse(data.even, data.quotes)

    assert len(odd.positions) == len(even.positions) == N
    assert len(diff(odd, even)) == len(diff(even, odd)) == round(N * CHANGED_SHARE)


def test_net_qty_helper_matches_the_parser() -> None:
    data = make_data(50)
    snapshot = parse(data.first, data.quotes)
    rows = json.loads(data.first)["data"]

    assert [net_qty(row) for row in rows] == [p.net_qty for p in snapshot.positions.values()]


async def test_scale_benchmark_reads_the_daemons_lag_and_cpu_on_a_small_run() -> None:
    """A smoke run of the scale figure: a few accounts, short stretches, polls counted.

    Only that the figures are read: how many polls fit the stretch, and how late, is the
    machine's business."""
    figures = await scale.run(ROOT, accounts=5, interval=1.0, warm_rounds=1, rounds=2)

    assert figures["scale_polls"] > 0
    assert figures["scale_cpu_share"] > 0
    assert figures["scale_lag_p99_ms"] > 0
    assert figures["scale_lag_p99_over_interval"] == figures["scale_lag_p99_ms"] / 1e3
