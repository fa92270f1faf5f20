"""A rule test file once read: its tests, their polls and the alerts they expect."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from monitor import replay
from monitor.brokers.errors import BrokerUnavailable
from monitor.model import Position, Snapshot
from monitor.rules.base import Rule

GENERIC = "generic"  # polls written as rows in the test, not as a broker's response


@dataclass(frozen=True, slots=True)
class TestPoll:
    """One poll of a test: generic rows, a broker's recorded response, or a failure."""

    line: int
    at: datetime
    positions: tuple[Position, ...] | None  # generic rows; None for a failure or a body
    record: replay.PollRecord | None  # a broker's response (or failure), as replay reads it
    error: str | None  # a failed generic poll

    def snapshot(self, account: str) -> Snapshot:
        """The good snapshot this poll yields, or the BrokerError the daemon would have seen."""
        if self.record is not None:
            return replay.outcome(self.record)
        if self.positions is None:
            raise BrokerUnavailable(GENERIC, f"transport error: {self.error}")
        return Snapshot(account, GENERIC, self.at, {p.key: p for p in self.positions})


@dataclass(frozen=True, slots=True)
class Expected:
    """One expected alert: the alert JSON fields it must have, with ``details`` as a subset."""

    line: int
    fields: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class RuleTest:
    """One test of a test file."""

    name: str
    line: int
    account: str
    timezone: ZoneInfo
    polls: tuple[TestPoll, ...]
    expect: tuple[Expected, ...]


@dataclass(frozen=True, slots=True)
class TestFile:
    """A checked test file and the rules it tests."""

    path: Path
    rules: tuple[Rule, ...]
    tests: tuple[RuleTest, ...]
