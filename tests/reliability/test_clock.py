"""Fault: the wall clock jumps, and the trading day rolls over, during a poll.

The daemon runs with libfaketime preloaded (the ``libfaketime`` dev package ships the library),
reading its wall clock from a file the test rewrites; the monotonic clock stays real. Each jump is
made by the fake broker while it answers a positions request, so the poll started before the
jump and its snapshot is taken after it. India time, from two seconds before midnight:

1. baseline on day D: MTM 10,000 (the day's peak);
2. during a poll the clock reaches D+1 and the broker starts its new day: the short day position
   is gone and MTM is 0. A new day: peaks reset, the vanished row dropped silently, no alert;
3. during a poll the clock steps back 20 s, to day D: MTM 2,000. Still day D+1 (a clock that
   steps back across midnight does not start a day again), a new peak of 2,000, and polling goes
   on at its interval while the wall clock is behind;
4. during a poll the clock steps forward to D+1 again: MTM -4,000. No second reset: the drawdown
   of 6,000 from the 2,000 peak fires once.

Expected: that one drawdown alert and nothing else; the state file on day D+1 with peak 2,000.

A clock that runs a day ahead and is set right (the second test) takes the account back to the
wall clock's day, so the real midnight still starts the next day.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import libfaketime

from tests.fakes import portfolio, serve
from tests.reliability.harness import (
    PORTFOLIO_TOKEN,
    Harness,
    pf_row,
    portfolio_account,
    query,
    until,
)

IST = ZoneInfo("Asia/Kolkata")
RULES: list[dict[str, object]] = [
    {"name": "fresh-short", "kind": "new_short"},
    {"name": "closed", "kind": "squared_off"},
    {"name": "desk-drawdown", "kind": "mtm_drawdown", "threshold": 5000, "severity": "critical"},
]


class FakeClock:
    """The daemon's wall clock: an offset from the real one, in the file libfaketime reads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.set(datetime.now(UTC))

    def set(self, when: datetime) -> None:
        """From now on the daemon's clock reads ``when`` (and ticks on from there)."""
        offset = (when - datetime.now(UTC)).total_seconds()
        self.path.write_text(f"{offset:+.3f}\n")

    def environment(self) -> dict[str, str]:
        """What the daemon's process needs: the preload, the file, a real monotonic clock."""
        _, preload = libfaketime.get_reload_information()
        return {**preload, "FAKETIME_TIMESTAMP_FILE": str(self.path), "DONT_FAKE_MONOTONIC": "1"}


@dataclass
class MidPollPortfolio(portfolio.PortfolioState):
    """The portfolio fake with actions run while answering the next requests, one each."""

    on_next: deque[Callable[[], None]] = field(default_factory=deque)

    def body(self) -> bytes:
        """Run the next queued action (a clock jump, new rows), then answer."""
        if self.on_next:
            self.on_next.popleft()()
        return super().body()


def stored_day(state: Path) -> tuple[date, Decimal, bool]:
    """The account's trading day, and its drawdown peak and whether it fires, in the state
    file."""
    [(day,)] = query(state, "SELECT trading_day FROM accounts WHERE account = 'p1'")
    # The account-scope peak is the rule's one entry, keyed by null segment, token, product.
    [(entry,)] = query(
        state,
        "SELECT state FROM rule_entries WHERE rule = 'desk-drawdown'"
        " AND entry = '[null, null, null]'",
    )
    [_segment, _token, _product, peak, _pending, firing_since, *_] = json.loads(entry)
    return date.fromisoformat(day), Decimal(peak), firing_since is not None


async def test_clock_jumps_and_day_rollover_during_polls(harness: Harness) -> None:
    """Rollover, a step back across midnight and forward again: one reset, one alert."""
    clock = FakeClock(harness.tmp / "faketime")
    now = datetime.now(IST)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), IST)
    day = midnight.date() - timedelta(days=1)
    clock.set(midnight - timedelta(seconds=10))
    reliance = pf_row("11536", "RELIANCE-EQ", "10", "10000.00")
    infy = pf_row("1594", "INFY-EQ", "-5", "0.00")
    fake = MidPollPortfolio(token=PORTFOLIO_TOKEN, rows=[reliance, infy])
    state = harness.tmp / "state.db"

    def at(when: datetime, pnl: str, *rows: dict[str, str]) -> Callable[[], None]:
        def action() -> None:
            clock.set(when)
            fake.rows = [{**reliance, "pnl": pnl}, *rows]

        return action

    async with serve(portfolio.make_app(fake)) as base:
        config = harness.rules([portfolio_account(base, timezone="Asia/Kolkata")], rules=RULES)
        daemon = harness.daemon(config, state, env=clock.environment())
        await daemon.started()
        await daemon.wait_event("baseline_taken")
        assert stored_day(state) == (day, 10000, False)

        fake.on_next.append(at(midnight + timedelta(seconds=1), "0.00"))
        await until(lambda: stored_day(state)[0] == day + timedelta(days=1), "the new day")
        rolled = stored_day(state)

        fake.on_next.append(at(midnight - timedelta(seconds=20), "2000.00"))
        stepped_back = len(fake.requests)
        await until(lambda: len(fake.requests) >= stepped_back + 5, "polls while behind", 60)
        behind = stored_day(state)

        fake.on_next.append(at(midnight + timedelta(seconds=5), "-4000.00"))
        await daemon.wait_alerts(1)
        seen = len(fake.requests)
        await until(lambda: len(fake.requests) >= seen + 3, "three more polls")
        assert await daemon.sigterm() == 0

    next_day = day + timedelta(days=1)
    assert rolled == (next_day, 0, False), "the peak reset at the new day"
    assert behind == (next_day, 2000, False), "still the new day, its peak kept and raised"
    [alert] = daemon.alerts()
    assert alert["rule"] == "desk-drawdown"
    assert alert["details"] == {"mtm": -4000, "peak": 2000, "drawdown": 6000}
    assert stored_day(state) == (next_day, 2000, True)


async def test_clock_stepped_forward_a_day_and_back_does_not_freeze_the_day(
    harness: Harness,
) -> None:
    """India time, noon of day D: the clock jumps a day ahead during a poll (a new day, early:
    it cannot be told from a real one), is set right during the next (back to day D, its peak
    kept, logged) and then reaches the real midnight (a new day: peaks reset once more, so the
    next day's MTM raises no drawdown against day D's peak)."""
    clock = FakeClock(harness.tmp / "faketime")
    day = datetime.now(IST).date()
    noon = datetime.combine(day, datetime.min.time(), IST) + timedelta(hours=12)
    next_day = day + timedelta(days=1)
    clock.set(noon)
    reliance = pf_row("11536", "RELIANCE-EQ", "10", "10000.00")
    fake = MidPollPortfolio(token=PORTFOLIO_TOKEN, rows=[reliance])
    state = harness.tmp / "state.db"

    def at(when: datetime, pnl: str) -> Callable[[], None]:
        def action() -> None:
            clock.set(when)
            fake.rows = [{**reliance, "pnl": pnl}]

        return action

    async with serve(portfolio.make_app(fake)) as base:
        config = harness.rules([portfolio_account(base, timezone="Asia/Kolkata")], rules=RULES)
        daemon = harness.daemon(config, state, env=clock.environment())
        await daemon.started()
        await daemon.wait_event("baseline_taken")
        baseline = stored_day(state)

        fake.on_next.append(at(noon + timedelta(days=1), "10000.00"))
        await until(lambda: stored_day(state)[0] == next_day, "the early new day")

        fake.on_next.append(at(noon + timedelta(seconds=30), "9000.00"))
        ahead = await daemon.wait_event("trading_day_ahead_of_clock")
        await until(lambda: stored_day(state)[0] == day, "back on day D")
        set_right = stored_day(state)

        fake.on_next.append(at(datetime.combine(next_day, datetime.min.time(), IST), "4000.00"))
        await until(lambda: stored_day(state)[0] == next_day, "the real new day")
        seen = len(fake.requests)
        await until(lambda: len(fake.requests) >= seen + 3, "three more polls")
        assert await daemon.sigterm() == 0

    assert baseline == (day, 10000, False)
    assert (ahead["reached"], ahead["day"], ahead["restarted"]) == (
        next_day.isoformat(), day.isoformat(), False,
    )  # fmt: skip
    assert set_right == (day, 10000, False), "day D again, the peak since the early reset kept"
    assert stored_day(state) == (next_day, 4000, False), "the real midnight reset the peak"
    assert daemon.alerts() == []
