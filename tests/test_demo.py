"""The zero-configuration demo: the bundled rules.yaml on the simulator speaks within a minute."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from monitor import config
from monitor.brokers.simulator import Simulator
from monitor.pipeline import evaluate_poll


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6, 7, 8])
def test_every_bundled_rule_fires_within_the_first_minute(seed: int, bundled_rules: Path) -> None:
    """30 polls 2 s apart (one minute) from a random time of day: every bundled rule fires."""
    rules = config.load(bundled_rules)
    account = config.simulator_account(rules)
    assert account.poll_every == timedelta(seconds=2)
    tz = ZoneInfo("Asia/Kolkata")
    start = datetime(2026, 11, 23, tzinfo=tz) + timedelta(
        seconds=random.Random(seed).randrange(0, 86_400 - 120)
    )
    market = Simulator(account.id, seed=seed, tick=account.poll_every, timezone=tz)
    previous, day, states, fired = None, None, {}, set()
    for n in range(30):
        snapshot = market.snapshot_at(start + n * account.poll_every)
        evaluation = evaluate_poll(previous, day, snapshot, rules.rules, states, tz)
        previous, day, states = snapshot, evaluation.trading_day, evaluation.states
        fired.update(alert.rule for alert in evaluation.alerts)
    assert fired == {rule.name for rule in rules.rules}
