"""``Engine.replace_rules``: a reload keeps the state of unchanged rules and drops the rest,
in memory and in the state file."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from monitor.engine import Engine
from monitor.store import Store
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
