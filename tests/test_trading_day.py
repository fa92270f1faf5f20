"""The trading day under a wall clock that steps: the pure rule, polls through it, and a state
file whose stored day lies far in the future."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from monitor.config import SinkConfig
from monitor.engine import Engine
from monitor.model import Severity
from monitor.pipeline import STEP_BACK_KEPT, DayTurn, Evaluation, evaluate_poll, next_trading_day
from monitor.rules.base import PositionFilter
from monitor.rules.conditions import Scope
from monitor.rules.lifecycle import Lifecycle
from monitor.rules.mtm_drawdown import MtmDrawdown
from monitor.store import Store
from tests.snapshots import IST, drawdown_entry, pos, snap

DAY = date(2026, 11, 23)
MIDNIGHT = datetime(2026, 11, 24, 0, 0, tzinfo=IST)  # the end of DAY in India
DRAWDOWN = MtmDrawdown(
    "desk-drawdown", Severity.CRITICAL, PositionFilter(), Scope.ACCOUNT, Lifecycle(), Decimal(1000)
)


def at(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A wall-clock time in India."""
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=IST)


NEXT = DAY + timedelta(days=1)
TWO_DAYS = timedelta(days=2)


@pytest.mark.parametrize(
    ("reached", "last_poll", "now", "turn"),
    [
        (None, None, at(DAY, 12), DayTurn(DAY, False)),
        (DAY, at(DAY, 12), at(DAY, 12, 1), DayTurn(DAY, False)),
        (DAY, at(DAY, 23, 59), at(NEXT, 0, 0, 1), DayTurn(NEXT, True)),
        # An NTP step back of 20 s across midnight: still the day reached, no second start.
        (NEXT, at(NEXT, 0, 0, 5), at(DAY, 23, 59, 45), DayTurn(NEXT, False)),
        # The same, the step back just within the hour kept.
        (NEXT, at(NEXT, 0, 30), MIDNIGHT - timedelta(minutes=30), DayTurn(NEXT, False)),
        # A clock a day ahead set right at noon: back to the wall clock's day, peaks kept.
        (NEXT, at(NEXT, 12), at(DAY, 12, 0, 30), DayTurn(DAY, False, NEXT)),
        # Set right 5 minutes before midnight: the step back (a day) is what gives it away.
        (NEXT, at(NEXT, 23, 55), at(DAY, 23, 55, 30), DayTurn(DAY, False, NEXT)),
        # Behind midnight by more than the hour kept, whatever the last poll said.
        (NEXT, at(DAY, 20), at(DAY, 21), DayTurn(DAY, False, NEXT)),
        # A stored day more than one day ahead: not trusted, the day starts afresh.
        (date(9999, 12, 31), at(DAY, 11), at(DAY, 12), DayTurn(DAY, True, date(9999, 12, 31))),
        (
            DAY + timedelta(days=2),
            at(DAY, 11),
            at(DAY, 12),
            DayTurn(DAY, True, DAY + timedelta(days=2)),
        ),
    ],
)
def test_next_trading_day(
    reached: date | None, last_poll: datetime | None, now: datetime, turn: DayTurn
) -> None:
    """The rule, case by case."""
    assert next_trading_day(reached, last_poll, now, IST) == turn


def test_the_hour_kept_is_an_hour() -> None:
    """The bound the cases above sit on either side of."""
    assert timedelta(hours=1) == STEP_BACK_KEPT
    just_over = MIDNIGHT - STEP_BACK_KEPT - timedelta(seconds=1)
    assert next_trading_day(NEXT, MIDNIGHT, just_over, IST) == DayTurn(DAY, False, NEXT)


def polls(*steps: tuple[datetime, int]) -> list[Evaluation]:
    """Evaluate polls at the given wall-clock times with the given account MTMs, each from the
    day and state the one before left, as the engine does."""
    evaluations: list[Evaluation] = []
    previous, day, state = None, None, None
    for when, mtm in steps:
        current = snap(pos("1", 1, mtm=mtm), at=when)
        states = {} if state is None else {DRAWDOWN.name: state}
        evaluation = evaluate_poll(previous, day, current, [DRAWDOWN], states, IST)
        evaluations.append(evaluation)
        previous, day, state = current, evaluation.trading_day, evaluation.states[DRAWDOWN.name]
    return evaluations


def test_a_clock_a_day_ahead_set_right_does_not_freeze_the_day() -> None:
    """A clock stepped forward a day at noon and set right at 14:00: the early reset cannot be
    helped, but the real midnight starts the next day, so the next day's MTM is measured from
    its own peak and raises no drawdown against the day before."""
    evaluations = polls(
        (at(DAY, 11), 10_000),
        (at(NEXT, 12), 10_000),  # forward a day: a new day, early
        (at(DAY, 14), 9_500),  # set right: back on DAY, the peak of 10,000 kept
        (at(DAY, 15), 8_800),  # 1,200 below that peak: a real drawdown of DAY
        (at(NEXT, 0, 0, 5), 4_000),  # the real midnight: a new day
        (at(NEXT, 9), 3_500),
    )
    assert [(e.trading_day, e.new_day) for e in evaluations] == [
        (DAY, False), (NEXT, True), (DAY, False), (DAY, False), (NEXT, True), (NEXT, False),
    ]  # fmt: skip
    assert [e.left_ahead for e in evaluations] == [None, None, NEXT, None, None, None]
    assert [len(e.alerts) for e in evaluations] == [0, 0, 0, 1, 0, 0]
    assert evaluations[-1].states[DRAWDOWN.name] == {None: drawdown_entry(4000)}


def test_a_step_back_across_midnight_and_forward_again_resets_once() -> None:
    """An NTP correction of 20 s across midnight: one new day, and the drawdown after it fires
    against the new day's peak."""
    evaluations = polls(
        (at(DAY, 23, 59, 50), 10_000),
        (at(NEXT, 0, 0, 1), 0),
        (at(DAY, 23, 59, 41), 2_000),
        (at(NEXT, 0, 0, 5), -4_000),
    )
    assert [(e.trading_day, e.new_day) for e in evaluations] == [
        (DAY, False), (NEXT, True), (NEXT, False), (NEXT, False),
    ]  # fmt: skip
    assert [len(e.alerts) for e in evaluations] == [0, 0, 0, 1]


def test_a_stored_day_far_in_the_future_starts_the_day_afresh(tmp_path: Path) -> None:
    """A state file whose trading day reads 9999-12-31: the next poll logs it, starts today's
    day from the wall clock (the stored peak is not trusted, so no drawdown against it) and
    stores today's day."""
    path = tmp_path / "state.db"
    sinks = (SinkConfig("console", "console"),)
    store = Store(path)
    Engine(store, [DRAWDOWN], sinks).ingest(snap(pos("1", 1, mtm=10_000), at=at(DAY, 10)), IST)
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE accounts SET trading_day = '9999-12-31'")

    store = Store(path)
    try:
        with capture_logs() as logs:
            evaluation = Engine(store, [DRAWDOWN], sinks).ingest(
                snap(pos("1", 1, mtm=5_000), at=at(DAY, 11)), IST
            )
        stored = store.load_account("kotak-main")
    finally:
        store.close()
    assert (evaluation.trading_day, evaluation.new_day, evaluation.alerts) == (DAY, True, [])
    assert stored is not None and stored.trading_day == DAY
    [said] = [e for e in logs if e["event"] == "trading_day_ahead_of_clock"]
    assert said["reached"] == "9999-12-31"
    assert (said["day"], said["restarted"]) == ("2026-11-23", True)
