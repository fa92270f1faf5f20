"""Each test's polls through the daemon's engine, on a fresh in-memory store per test."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from monitor.brokers.errors import BrokerError
from monitor.engine import memory_engine
from monitor.model import Alert
from monitor.rule_tests.cases import RuleTest, TestFile
from monitor.rule_tests.matching import differences
from monitor.rules.base import Rule


@dataclass(frozen=True, slots=True)
class Result:
    """What one test produced, and how that differs from what it expects (empty: it passed)."""

    test: RuleTest
    produced: tuple[Alert, ...]
    differences: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """True when the test produced exactly the alerts it expects."""
        return not self.differences


def run(test_file: TestFile) -> list[Result]:
    """Run every test of ``test_file``, each on a fresh in-memory store."""
    return [_run(test, test_file.rules) for test in test_file.tests]


def _run(test: RuleTest, rules: Sequence[Rule]) -> Result:
    """One test's polls through a fresh engine, and the differences from what it expects."""
    produced: list[Alert] = []
    with memory_engine(rules) as engine:
        for poll in test.polls:
            try:
                snapshot = poll.snapshot(test.account)
            except BrokerError:
                continue  # a failed poll never reaches the rules
            produced += engine.ingest(snapshot, test.timezone).alerts
    return Result(test, tuple(produced), tuple(differences(test.expect, produced)))
