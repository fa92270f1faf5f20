"""Rows a good answer left out: carried for one poll, removed when the next one agrees.

``carry_missing`` on plain data, then through ``evaluate_poll`` with the event and drawdown
rules, then a property over random sequences of answers within one day.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from monitor.carry import carry_missing
from monitor.diff import diff
from monitor.model import Change, ChangeKind, Position, Severity, Snapshot
from monitor.pipeline import Evaluation, evaluate_poll
from monitor.rules import position_limit
from monitor.rules.base import PositionFilter
from monitor.rules.conditions import Scope
from monitor.rules.lifecycle import Lifecycle
from monitor.rules.mtm_drawdown import MtmDrawdown
from monitor.rules.new_short import NewShort
from monitor.rules.squared_off import SquaredOff
from tests.snapshots import IST, T0, drawdown_entry, key, pos, snap

LONG, SHORT, FLAT = pos("1", 25, mtm=5000), pos("2", -10, mtm=-200), pos("3", 0, mtm=300)


def later(minutes: int, *positions: Position) -> Snapshot:
    """A snapshot ``minutes`` after T0 holding ``positions``."""
    return snap(*positions, at=T0 + timedelta(minutes=minutes))


def carry(
    previous: Snapshot | None, current: Snapshot, *, new_day: bool = False
) -> tuple[Snapshot, list[Change]]:
    """carry_missing over the diff, as the pipeline calls it."""
    return carry_missing(previous, current, diff(previous, current), new_day)


def test_a_missing_row_is_carried_after_the_reported_ones_and_changes_nothing() -> None:
    """LONG missing once: carried as last reported, after the rows reported, no change."""
    moved = pos("2", -15, mtm=-100)
    snapshot, changes = carry(snap(LONG, SHORT, FLAT), later(1, FLAT, moved))
    assert list(snapshot.positions.values()) == [FLAT, moved, LONG]
    assert snapshot.carried == {key("1")}
    assert changes == [Change(ChangeKind.CHANGED, key("2"), SHORT, moved)]
    assert [p.key for p in snapshot.reported_positions()] == [key("3"), key("2")]
    assert (snapshot.is_carried(key("1")), snapshot.is_carried(key("2"))) == (True, False)


def test_an_empty_good_answer_carries_every_row() -> None:
    """An empty book ("No Data") is every row missing for one poll."""
    previous = snap(LONG, SHORT)
    snapshot, changes = carry(previous, later(1))
    assert (dict(snapshot.positions), snapshot.carried, changes) == (
        dict(previous.positions), {key("1"), key("2")}, [],
    )  # fmt: skip
    assert list(snapshot.reported_positions()) == []


def test_a_row_missing_again_is_removed() -> None:
    """A carried row the next answer still lacks is REMOVED, with the row as last reported."""
    first, _ = carry(snap(LONG, SHORT), later(1, SHORT))
    snapshot, changes = carry(first, later(2, SHORT))
    assert (list(snapshot.positions), snapshot.carried) == ([key("2")], frozenset())
    assert changes == [Change(ChangeKind.REMOVED, key("1"), LONG, None)]


def test_one_row_removed_while_another_starts_its_carry() -> None:
    """The carried LONG is removed and SHORT, missing for the first time, is carried."""
    first, _ = carry(snap(LONG, SHORT, FLAT), later(1, SHORT, FLAT))
    snapshot, changes = carry(first, later(2, FLAT))
    assert snapshot.carried == {key("2")}
    assert changes == [Change(ChangeKind.REMOVED, key("1"), LONG, None)]


def test_a_row_back_is_compared_with_the_row_as_last_reported() -> None:
    """Back unchanged: nothing. Back changed: CHANGED from the row as last reported."""
    first, _ = carry(snap(LONG, SHORT), later(1, SHORT))
    snapshot, changes = carry(first, later(2, SHORT, LONG))
    assert (snapshot.carried, changes) == (frozenset(), [])
    flat = pos("1", 0, mtm=4000)
    snapshot, changes = carry(first, later(2, SHORT, flat))
    assert changes == [Change(ChangeKind.CHANGED, key("1"), LONG, flat)]


def test_nothing_is_carried_on_a_baseline_or_a_new_day() -> None:
    """No previous snapshot: nothing to carry. A new day: missing rows are removed at once,
    and a row carried at the end of the day before is removed too."""
    current = snap(SHORT)
    assert carry(None, current) == (current, diff(None, current))
    carried_yesterday, _ = carry(snap(LONG, SHORT, FLAT), later(1, SHORT, FLAT))
    today = later(60 * 24, SHORT)
    snapshot, changes = carry(carried_yesterday, today, new_day=True)
    assert snapshot is today
    assert [(c.kind, c.key) for c in changes] == [
        (ChangeKind.REMOVED, key("3")), (ChangeKind.REMOVED, key("1")),
    ]  # fmt: skip


def test_an_answer_with_every_row_leaves_the_snapshot_as_it_is() -> None:
    """The usual poll: the same snapshot object and the same changes list come back."""
    previous, current = snap(LONG, SHORT), later(1, SHORT, pos("1", 20, mtm=10))
    changes = diff(previous, current)
    snapshot, kept = carry_missing(previous, current, changes, False)
    assert (snapshot, kept) == (current, changes)
    assert snapshot is current and kept is changes


# Through the pipeline: the rules see the carried snapshot.

CLOSED = SquaredOff("closed", Severity.INFO, PositionFilter())
FRESH_SHORT = NewShort("fresh-short", Severity.WARNING, PositionFilter())
DRAWDOWN = MtmDrawdown(
    "desk-drawdown", Severity.CRITICAL, PositionFilter(), Scope.ACCOUNT, Lifecycle(), Decimal(1000)
)
RULES = (FRESH_SHORT, CLOSED, DRAWDOWN)


def run(*snapshots: Snapshot) -> list[Evaluation]:
    """Evaluate the snapshots in order, each against the one the previous poll left."""
    evaluations: list[Evaluation] = []
    previous: Snapshot | None = None
    day = None
    states: dict[str, object] = {}
    for current in snapshots:
        evaluation = evaluate_poll(previous, day, current, RULES, states, IST)
        evaluations.append(evaluation)
        previous, day, states = evaluation.snapshot, evaluation.trading_day, evaluation.states
    return evaluations


def test_an_empty_answer_between_two_full_ones_raises_nothing_and_keeps_the_peak() -> None:
    """MTM 5100 stays 5100 through the empty answer: no square-off, no drawdown, same peak."""
    evaluations = run(snap(LONG, SHORT), later(1), later(2, LONG, SHORT))
    assert [e.alerts for e in evaluations] == [[], [], []]
    assert [e.states["desk-drawdown"] for e in evaluations] == [{None: drawdown_entry(4800)}] * 3


def test_a_row_missing_twice_is_squared_off_at_the_second_answer() -> None:
    """LONG missing twice: one square-off, at the second, row_removed; the drawdown of its MTM
    counts then, not at the short answer."""
    evaluations = run(snap(LONG, SHORT), later(1, SHORT), later(2, SHORT), later(3, SHORT))
    alerts = [(e.snapshot.taken_at, a.rule, a.details) for e in evaluations for a in e.alerts]
    assert alerts == [
        (
            later(2).taken_at,
            "closed",
            {"net_qty_before": Decimal(25), "net_qty": Decimal(0), "row_removed": True},
        ),
        (
            later(2).taken_at,
            "desk-drawdown",
            {"mtm": Decimal(-200), "peak": Decimal(4800), "drawdown": Decimal(5000)},
        ),
    ]


def test_position_scope_drawdown_keeps_a_carried_rows_peak() -> None:
    """A carried row keeps its last figures, so its own peak and state do not move."""
    legs = MtmDrawdown(
        "legs", Severity.WARNING, PositionFilter(), Scope.POSITION, Lifecycle(), Decimal(1000)
    )
    previous = snap(LONG, SHORT)
    state = evaluate_poll(None, None, previous, [legs], {}, IST).states
    short = evaluate_poll(previous, T0.date(), later(1, SHORT), [legs], state, IST)
    assert (short.alerts, short.states) == ([], state)


def test_a_carried_row_does_not_advance_a_position_conditions_for() -> None:
    """A position over its limit, pending for 2 minutes, is missing from the answer at minute
    2: the carried row is not judged, so the condition does not fire on figures the broker did
    not report; it fires when the row is reported again."""
    limit = position_limit.build(
        "size", Severity.WARNING, PositionFilter(), {"max_quantity": 10, "for": "2m"}
    )
    evaluations = [evaluate_poll(None, None, snap(LONG, SHORT), [limit], {}, IST)]
    for current in (later(1, LONG, SHORT), later(2, SHORT), later(3, LONG, SHORT)):
        last = evaluations[-1]
        evaluations.append(
            evaluate_poll(last.snapshot, last.trading_day, current, [limit], last.states, IST)
        )
    assert evaluations[2].snapshot.carried == {LONG.key}
    fired = [(e.snapshot.taken_at, a.symbol) for e in evaluations for a in e.alerts]
    assert fired == [(later(3).taken_at, LONG.symbol)]


# A property over random answers within one day.

TOKENS = ("1", "2", "3", "4")


@given(st.lists(st.sets(st.sampled_from(TOKENS)), min_size=1, max_size=8))
def test_a_row_is_removed_only_when_two_answers_in_a_row_lack_it(answers: list[set[str]]) -> None:
    """For any sequence of answers after a full baseline: a row is REMOVED exactly at an answer
    that lacks it when the answer before lacked it too (and it was not removed already), every
    other missing row is carried, and the snapshot holds every row not yet removed."""
    present = set(TOKENS)  # rows held: reported or carried
    previous = snap(*(pos(t, 1) for t in TOKENS))
    lacked_before: set[str] = set()
    for minute, answer in enumerate(answers, start=1):
        current = later(minute, *(pos(t, 1) for t in sorted(answer)))
        snapshot, changes = carry(previous, current)
        removed = {c.key.token for c in changes if c.kind is ChangeKind.REMOVED}
        missing = present - answer
        assert removed == missing & lacked_before
        assert {k.token for k in snapshot.carried} == missing - lacked_before
        present = (present - removed) | answer
        assert {k.token for k in snapshot.positions} == present
        lacked_before = missing - removed
        previous = snapshot
