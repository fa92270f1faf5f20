"""The lifecycle of one condition: ``for``, ``keep_firing_for``, ``repeat_interval``, unknown
outcomes, and the options as rules.yaml gives them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.model import Severity
from monitor.rules.base import PositionFilter, RuleConfigError
from monitor.rules.lifecycle import (
    INACTIVE,
    Condition,
    Lifecycle,
    Outcome,
    Transition,
    at_rest,
    read_lifecycle,
    step,
)
from monitor.rules.registry import RULE_KINDS
from tests.snapshots import T0

A, C, N, U = Outcome.ACTIVE, Outcome.CLEAR, Outcome.NEITHER, Outcome.UNKNOWN
FIRED, REPEATED, RESOLVED = Transition.FIRED, Transition.REPEATED, Transition.RESOLVED


def at(minutes: float) -> datetime:
    """T0 plus ``minutes``."""
    return T0 + timedelta(minutes=minutes)


def run(
    lifecycle: Lifecycle, polls: Sequence[tuple[float, Outcome]], start: Condition = INACTIVE
) -> tuple[Condition, list[tuple[float, str]]]:
    """Step through (minute, outcome) polls; the last condition and each transition's minute."""
    condition = start
    transitions = []
    for minute, outcome in polls:
        condition, transition = step(condition, outcome, at(minute), lifecycle)
        if transition is not Transition.NONE:
            transitions.append((minute, transition.value))
    return condition, transitions


DEFAULT = Lifecycle()


def test_default_fires_at_once_and_resolves_at_once() -> None:
    """With no options an active poll fires, a clear poll resolves, and it can fire again."""
    assert run(DEFAULT, [(0, C), (1, A), (2, A), (3, C), (4, A)]) == (
        Condition(None, at(4), at(4), None),
        [(1, "fired"), (3, "resolved"), (4, "fired")],
    )


def test_neither_keeps_a_firing_condition_and_never_fires_one() -> None:
    """Neither active nor clear: no fire from inactive, no resolve while firing."""
    assert run(DEFAULT, [(0, N), (1, N)]) == (INACTIVE, [])
    assert run(DEFAULT, [(0, A), (1, N), (2, N)])[1] == [(0, "fired")]


def test_for_fires_once_the_condition_held_that_long() -> None:
    """Pending from the first active poll; fires at the first poll with taken_at - pending
    >= for (exactly 5m counts)."""
    five = Lifecycle(hold_for=timedelta(minutes=5))
    condition, transitions = run(five, [(0, A), (2, A), (4.99, A)])
    assert (condition, transitions) == (Condition(pending_since=at(0)), [])
    assert run(five, [(0, A), (2, A), (5, A)])[1] == [(5, "fired")]


def test_a_poll_not_active_cancels_the_pending() -> None:
    """A clear or a neither poll cancels the pending; the count starts over."""
    five = Lifecycle(hold_for=timedelta(minutes=5))
    for interruption in (C, N):
        polls = [(0, A), (3, interruption), (4, A), (8, A), (9, A)]
        assert run(five, polls)[1] == [(9, "fired")]


def test_unknown_neither_advances_nor_resets() -> None:
    """An unknown outcome changes nothing: a pending keeps its start, a firing stays."""
    five = Lifecycle(hold_for=timedelta(minutes=5))
    assert run(five, [(0, A), (3, U), (5, A)])[1] == [(5, "fired")]
    pending = Condition(pending_since=at(0))
    assert step(pending, U, at(10), five) == (pending, Transition.NONE)
    firing = Condition(None, at(0), at(0), at(1))
    assert step(firing, U, at(10), Lifecycle(keep_firing_for=timedelta(hours=1))) == (
        firing,
        Transition.NONE,
    )


def test_keep_firing_for_resolves_after_that_long_clear() -> None:
    """Resolves at the first poll at least keep_firing_for after the first clear poll."""
    keep = Lifecycle(keep_firing_for=timedelta(minutes=3))
    condition, transitions = run(keep, [(0, A), (1, C), (3.5, C)])
    assert (condition, transitions) == (Condition(None, at(0), at(0), at(1)), [(0, "fired")])
    assert run(keep, [(0, A), (1, C), (3.5, C), (4, C)])[1] == [(0, "fired"), (4, "resolved")]


def test_keep_firing_for_count_restarts_on_a_poll_not_clear() -> None:
    """An active or a neither poll during the count starts it over, without a new alert."""
    keep = Lifecycle(keep_firing_for=timedelta(minutes=3))
    for interruption in (A, N):
        polls = [(0, A), (1, C), (2, interruption), (3, C), (5.9, C), (6, C)]
        assert run(keep, polls)[1] == [(0, "fired"), (6, "resolved")]


def test_repeat_interval_repeats_while_firing_and_not_clear() -> None:
    """A poll at least repeat_interval after the last alert sends it again; active and neither
    polls both count as still firing."""
    every = Lifecycle(repeat_interval=timedelta(minutes=10))
    polls = [(0, A), (9, A), (10, N), (15, A), (20, A), (25, A)]
    condition, transitions = run(every, polls)
    assert transitions == [(0, "fired"), (10, "repeated"), (20, "repeated")]
    assert condition == Condition(None, at(0), at(20), None)


def test_no_repeat_while_keep_firing_for_counts() -> None:
    """While clear but kept firing, no reminder is sent."""
    lifecycle = Lifecycle(
        keep_firing_for=timedelta(minutes=30), repeat_interval=timedelta(minutes=10)
    )
    assert run(lifecycle, [(0, A), (5, C), (20, C)])[1] == [(0, "fired")]


def test_repeat_timing_continues_from_a_restored_state() -> None:
    """A condition read back from the store repeats on the schedule it had."""
    every = Lifecycle(repeat_interval=timedelta(minutes=10))
    restored = Condition(None, at(0), at(10), None)
    assert run(every, [(15, A), (20, A)], start=restored)[1] == [(20, "repeated")]


def test_for_with_keep_firing_for_and_repeat() -> None:
    """All three together: pending 2m, fires, repeats every 5m, resolves 3m after clearing."""
    lifecycle = Lifecycle(
        hold_for=timedelta(minutes=2),
        keep_firing_for=timedelta(minutes=3),
        repeat_interval=timedelta(minutes=5),
    )
    polls = [(0, A), (1, A), (2, A), (6, A), (7, A), (8, C), (10, C), (11, C), (12, A)]
    assert run(lifecycle, polls)[1] == [
        (2, "fired"), (7, "repeated"), (11, "resolved"),
    ]  # fmt: skip


def test_unchanged_condition_is_the_same_object() -> None:
    """A poll that changes nothing returns the very state it got (rules compare them cheaply)."""
    firing = Condition(None, at(0), at(0), None)
    assert step(firing, A, at(1), DEFAULT)[0] is firing
    assert step(INACTIVE, C, at(1), DEFAULT)[0] is INACTIVE


# Options


def test_read_lifecycle_defaults() -> None:
    """No lifecycle option: fire at once, resolve at once, never repeat, nothing on resolving."""
    assert read_lifecycle({}) == Lifecycle(timedelta(0), timedelta(0), None, False)


def test_read_lifecycle_reads_every_option() -> None:
    """Durations in the duration grammar, send_resolved a boolean."""
    options = {
        "for": "2m",
        "keep_firing_for": "90s",
        "repeat_interval": "1h",
        "send_resolved": True,
    }
    assert read_lifecycle(options) == Lifecycle(
        timedelta(minutes=2), timedelta(seconds=90), timedelta(hours=1), True
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"for": 5}, "for: must be a duration like 5s, 500ms or 1m; got 5"),
        ({"for": "5"}, "for: must be a duration like 5s, 500ms or 1m; got '5'"),
        ({"for": "2d"}, "for: must be from 0ms to 1d; got '2d'"),
        ({"keep_firing_for": "soon"}, "keep_firing_for: must be a duration like 5s, 500ms or 1m; "
         "got 'soon'"),
        ({"repeat_interval": "30s"}, "repeat_interval: must be from 1m to 1d; got '30s'"),
        ({"send_resolved": "yes"}, "send_resolved: must be true or false; got 'yes'"),
    ],
)  # fmt: skip
def test_read_lifecycle_errors_name_the_field(options: dict[str, object], message: str) -> None:
    """Each bad option is a RuleConfigError naming its field and saying what it must be."""
    with pytest.raises(RuleConfigError) as info:
        read_lifecycle(options)
    assert (info.value.field, str(info.value)) == (next(iter(options)), message)


@pytest.mark.parametrize("kind", ["new_short", "squared_off"])
@pytest.mark.parametrize("field", ["for", "keep_firing_for", "repeat_interval", "send_resolved"])
def test_event_kinds_refuse_lifecycle_options(kind: str, field: str) -> None:
    """An event fires once on a change; the lifecycle options are for conditions only."""
    with pytest.raises(RuleConfigError) as info:
        RULE_KINDS[kind]("r", Severity.WARNING, PositionFilter(), {field: "5m"})
    assert (info.value.field, info.value.reason) == (
        field,
        f"only condition kinds take it; {kind} is an event kind",
    )


@pytest.mark.parametrize("kind", ["mtm_drawdown", "mtm_below", "mtm_above", "position_limit"])
def test_condition_kinds_take_lifecycle_options(kind: str) -> None:
    """Every condition kind reads the four options into its lifecycle."""
    options = {
        "threshold": 100, "max_quantity": 100, "scope": "position", "for": "1m",
        "keep_firing_for": "2m", "repeat_interval": "3m", "send_resolved": True,
    }  # fmt: skip
    options.pop("max_quantity" if kind != "position_limit" else "threshold")
    rule = RULE_KINDS[kind]("r", Severity.WARNING, PositionFilter(), options)
    assert getattr(rule, "lifecycle") == Lifecycle(  # noqa: B009 - not on the Rule protocol
        timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=3), True
    )


@given(
    hold=st.sampled_from([0, 1, 5]),
    keep=st.sampled_from([0, 1, 5]),
    repeat=st.sampled_from([None, 1, 5]),
    polls=st.lists(st.tuples(st.integers(1, 4), st.sampled_from([A, C, N, U])), max_size=30),
    later=st.integers(1, 24 * 60),
)
def test_a_condition_at_rest_stays_so_on_the_outcome_that_left_it_there(
    hold: int, keep: int, repeat: int | None, polls: list[tuple[int, Outcome]], later: int
) -> None:
    """After any poll that leaves a condition at rest, the same outcome at any later time
    leaves it as it is and says nothing: what lets an unchanged row at rest go unjudged."""
    lifecycle = Lifecycle(
        timedelta(minutes=hold),
        timedelta(minutes=keep),
        None if repeat is None else timedelta(minutes=repeat),
    )
    condition, minute = INACTIVE, 0
    for gap, outcome in polls:
        minute += gap
        condition, _ = step(condition, outcome, at(minute), lifecycle)
        if at_rest(condition, lifecycle):
            assert step(condition, outcome, at(minute + later), lifecycle) == (
                condition,
                Transition.NONE,
            )


def test_what_time_moves_is_not_at_rest() -> None:
    """Pending, counting ``keep_firing_for``, or firing with repeats: not at rest."""
    repeats = Lifecycle(repeat_interval=timedelta(minutes=1))
    firing = Condition(None, at(0), at(0), None)
    assert at_rest(INACTIVE, repeats) and at_rest(firing, Lifecycle())
    assert not at_rest(firing, repeats)
    assert not at_rest(Condition(pending_since=at(0)), Lifecycle())
    assert not at_rest(Condition(None, at(0), at(0), at(1)), Lifecycle())
