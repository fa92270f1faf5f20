"""The zero-configuration demo: the bundled rules.yaml on the simulator, through the daemon's
engine, speaks within the first minute and raises every rule within a few minutes."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from monitor import config
from monitor.brokers.simulator import Simulator
from monitor.engine import memory_engine
from monitor.model import AlertState

KOLKATA = ZoneInfo("Asia/Kolkata")
FIVE_MINUTES = 150  # polls 2 s apart


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6, 7, 8])
def test_every_bundled_rule_fires_within_five_minutes(seed: int, bundled_rules: Path) -> None:
    """Five minutes of polls 2 s apart from a daemon started at a random time of day: an alert
    in the first minute, every bundled rule fires, and the loss limit also resolves."""
    rules = config.load(bundled_rules)
    account = config.simulator_account(rules)
    assert account.poll_every == timedelta(seconds=2)
    start = datetime(2026, 11, 23, tzinfo=KOLKATA) + timedelta(
        seconds=random.Random(seed).randrange(0, 86_400 - 600)
    )
    market = Simulator(
        account.id, seed=seed, tick=account.poll_every, timezone=KOLKATA, started=start
    )
    first_alert_poll, fired = None, set()
    with memory_engine(rules.rules) as engine:
        for n in range(FIVE_MINUTES):
            snapshot = market.snapshot_at(start + n * account.poll_every)
            alerts = engine.ingest(snapshot, KOLKATA).alerts
            if alerts and first_alert_poll is None:
                first_alert_poll = n
            fired.update((alert.rule, alert.state) for alert in alerts)

    assert first_alert_poll is not None
    assert first_alert_poll < 30
    assert {rule for rule, _ in fired} == {rule.name for rule in rules.rules}
    assert ("daily-loss-limit", AlertState.RESOLVED) in fired
