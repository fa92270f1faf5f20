"""``Engine.replace_rules``: a reload keeps the state of unchanged rules and drops the rest,
in memory and in the state file; the daemon's ``LiveEngine`` never swaps rules in the middle of
a poll's commit."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from monitor.engine import Engine, LiveEngine
from monitor.store import Store
from monitor.store_thread import StoreThread
from tests.snapshots import IST, pos, snap
from tests.test_engine import RULES, SINKS, minutes

DRAWDOWN = RULES[2]


def test_an_unchanged_rule_keeps_its_peak_and_latch(tmp_path: Path) -> None:
    """The same rules again: a drawdown that fired stays fired, measured from the old peak."""
    store = Store(tmp_path / "state.db")
    engine = Engine(store, RULES, SINKS)
    engine.ingest(snap(pos("1", 1, mtm=5000)), IST)
    [fired] = engine.ingest(snap(pos("1", 1, mtm=4000), at=minutes(1)), IST).alerts
    assert fired.details["peak"] == Decimal(5000), "the premise: the peak was set"
    engine.replace_rules(tuple(replace(rule) for rule in RULES))  # equal, not the same objects
    assert engine.ingest(snap(pos("1", 1, mtm=3500), at=minutes(2)), IST).alerts == []
    store.close()


def test_a_changed_rule_starts_afresh_in_memory_and_after_a_restart(tmp_path: Path) -> None:
    """Another threshold drops the rule's peak: the next poll sets a new one, also for an
    engine started on the same file afterwards."""
    store = Store(tmp_path / "state.db")
    engine = Engine(store, RULES, SINKS)
    engine.ingest(snap(pos("1", 1, mtm=5000)), IST)
    changed = replace(DRAWDOWN, threshold=Decimal(500))
    engine.replace_rules((*RULES[:2], changed))
    evaluation = engine.ingest(snap(pos("1", 1, mtm=4000), at=minutes(1)), IST)
    assert evaluation.alerts == [], "the old peak of 5000 would have fired"
    store.close()

    store = Store(tmp_path / "state.db")
    restarted = Engine(store, (*RULES[:2], changed), SINKS)
    assert restarted.ingest(snap(pos("1", 1, mtm=3800), at=minutes(2)), IST).alerts == []
    store.close()


async def test_a_poll_started_during_a_rule_swap_is_evaluated_by_the_new_rules(
    tmp_path: Path,
) -> None:
    """A poll that arrives while a swap waits on the state file waits for the swap: it keeps
    none of the changed rule's old peak, in memory or in the file."""
    thread = StoreThread(Store(tmp_path / "state.db"))
    engine = LiveEngine(thread, RULES, SINKS)
    await engine.ingest(snap(pos("1", 1, mtm=5000)), IST)
    loop = asyncio.get_running_loop()
    gate = asyncio.Event()
    held = asyncio.create_task(thread._run(lambda: asyncio.run_coroutine_threadsafe(
        gate.wait(), loop).result()))  # fmt: skip
    changed = replace(DRAWDOWN, threshold=Decimal(500))
    swapping = asyncio.create_task(engine.replace_rules((*RULES[:2], changed)))
    await asyncio.sleep(0.05)  # the swap's write waits behind the held call
    # A new short: this poll writes. Under the old rules it keeps the peak of 5000.
    polled = snap(pos("1", 1, mtm=4600), pos("2", -1), at=minutes(1))
    polling = asyncio.create_task(engine.ingest(polled, IST))
    await asyncio.sleep(0.05)
    assert not swapping.done()
    gate.set()
    await held
    await swapping
    await polling
    later = snap(pos("1", 1, mtm=4300), pos("2", -1), at=minutes(2))
    evaluation = await engine.ingest(later, IST)
    assert evaluation.alerts == [], "measured from 4600, not from the old peak of 5000"
    assert await thread.close(60)

    store = Store(tmp_path / "state.db")
    restarted = Engine(store, (*RULES[:2], changed), SINKS)
    again = snap(pos("1", 1, mtm=4200), pos("2", -1), at=minutes(3))
    assert restarted.ingest(again, IST).alerts == [], "the file holds no old peak either"
    store.close()
