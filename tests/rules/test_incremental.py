"""Condition rules judge only what can have moved: the rows that changed and the subjects whose
condition is not at rest. Over long random poll sequences that gives exactly the states, alerts
(in order) and stored entries of judging every subject, and every condition kind's ``assess``
is settled, which is what makes it exact."""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.model import Alert, AlertState, Position, PositionKey, Severity, Snapshot
from monitor.pipeline import evaluate_poll
from monitor.rules.base import Globs, Poll, PositionFilter, RuleConfigError
from monitor.rules.conditions import ConditionRule, ConditionState, Scope, Tracked
from monitor.rules.lifecycle import INACTIVE, Condition, Lifecycle
from monitor.rules.mtm_below import MtmBelow
from monitor.rules.mtm_drawdown import MtmDrawdown
from monitor.rules.registry import CONDITION_KINDS, RULE_KINDS
from tests.snapshots import IST, T0, key, pos, snap

# Each condition kind's own options, near the figures the sequences below produce. A kind
# missing here fails test_every_condition_kind_is_covered: add its options.
KIND_OPTIONS: Mapping[str, Mapping[str, object]] = {
    "mtm_drawdown": {"threshold": 1000},
    "mtm_below": {"threshold": -1000},
    "mtm_above": {"threshold": 1000},
    "position_limit": {"max_quantity": 50},
}

LIFECYCLES = [
    {"for": hold, "keep_firing_for": keep, "repeat_interval": repeat, "send_resolved": resolved}
    for hold, keep, repeat, resolved in itertools.product(
        ("0s", "30s"), ("0s", "90s"), (None, "1m"), (False, True)
    )
]
FILTERS = (
    PositionFilter(),
    PositionFilter(segments=Globs.of(["nse_fo"]), symbols=Globs.of(["A*"])),
)


def every_rule() -> list[ConditionRule]:
    """Every condition kind in every scope it takes, with every lifecycle and filter above."""
    rules = []
    number = itertools.count()
    for kind, own in KIND_OPTIONS.items():
        for scope, lifecycle, filter in itertools.product(Scope, LIFECYCLES, FILTERS):
            options = {"scope": scope.value, **own}
            options.update({k: v for k, v in lifecycle.items() if v is not None})
            try:
                rule = RULE_KINDS[kind](f"r{next(number)}", Severity.WARNING, filter, options)
            except RuleConfigError:
                continue  # a scope the kind does not take
            assert isinstance(rule, ConditionRule)
            rules.append(rule)
    return rules


RULES = every_rule()
TOKENS = [str(n) for n in range(1, 9)]
SEGMENTS = ("nse_fo", "nse_cm")


def _row(rng: random.Random, token: str, segment: str) -> Position:
    return pos(
        token,
        rng.randrange(-80, 81, 10),
        segment=segment,
        symbol=rng.choice("AB") + token,
        mtm=rng.randrange(-3000, 3001, 100),
    )


def _next_row(rng: random.Random, row: Position) -> Position:
    """The row as the next answer reports it: mostly the same, sometimes moved."""
    roll = rng.random()
    if roll < 0.7:
        return row
    qty, mtm, symbol = row.net_qty, row.mtm, row.symbol
    if roll < 0.87:
        mtm = (mtm or Decimal(0)) + rng.randrange(-900, 901, 50)
    elif roll < 0.93:
        qty += rng.randrange(-40, 41, 10)
    elif roll < 0.97:
        mtm = None  # a counted row without a price
    else:
        symbol = ("B" if symbol.startswith("A") else "A") + symbol[1:]  # the filter turns
    return pos(row.key.token, qty, segment=row.key.exchange_segment, symbol=symbol, mtm=mtm)


def answers(seed: int, count: int) -> Iterator[Snapshot]:
    """``count`` good answers of one account: rows changing, vanishing (one answer or for
    good), coming back, added, reordered; empty answers; polls 10 to 70 seconds apart and now
    and then the first poll of the next day."""
    rng = random.Random(seed)
    at = T0
    rows: list[Position] = []
    for _ in range(count):
        at += timedelta(seconds=rng.randrange(10, 71))
        if rng.random() < 0.03:
            at = datetime.combine(at.date() + timedelta(days=1), T0.timetz())
        rows = [_next_row(rng, row) for row in rows]
        free = [(t, s) for t in TOKENS for s in SEGMENTS if key(t, segment=s) not in _keys(rows)]
        if free and rng.random() < 0.4:
            rows.insert(rng.randrange(len(rows) + 1), _row(rng, *rng.choice(free)))
        if rng.random() < 0.1:
            rng.shuffle(rows)
        if rng.random() < 0.05:
            answer: list[Position] = []  # an empty book
        else:
            answer = [row for row in rows if rng.random() > 0.06]  # a row left out
            if rng.random() < 0.05 and answer:
                rows.remove(answer[-1])  # gone for good
                answer.pop()
        yield snap(*answer, at=at)


def _keys(rows: list[Position]) -> set[PositionKey]:
    return {row.key for row in rows}


def _restored(rule: ConditionRule, state: ConditionState) -> ConditionState:
    """The state after a trip through the store's JSON, as a restart loads it."""
    return rule.load_state(
        "kotak-main", json.loads(json.dumps(rule.dump_state(state), default=str))
    )


def _by_rule(alerts: list[Alert]) -> dict[str, list[Alert]]:
    by_rule: dict[str, list[Alert]] = {}
    for alert in alerts:
        by_rule.setdefault(alert.rule, []).append(alert)
    return by_rule


@pytest.mark.parametrize("seed", range(6))
def test_judging_what_moved_equals_judging_everything(seed: int) -> None:
    """Each poll goes through ``evaluate_poll`` (only what moved is judged) and, from the
    reference's own states, through every rule with a poll that names no changed keys (every
    subject judged). States, alerts in order and the entries the store would write agree at
    every poll, across rule states dropped (a reload) and reloaded from the store (a restart).
    """
    rng = random.Random(seed)
    states: dict[str, Any] = {}
    reference: dict[str, Any] = {}
    previous: Snapshot | None = None
    day: date | None = None
    seen: Counter[str] = Counter()
    for number, answer in enumerate(answers(seed, 90)):
        if rng.random() < 0.03 and states:  # a reload changed one rule: its state is dropped
            name = rng.choice(sorted(states))
            del states[name], reference[name]
        if rng.random() < 0.03:  # a restart: every state as the store gives it back
            for rule in RULES:
                if rule.name in states:
                    states[rule.name] = _restored(rule, states[rule.name])
                    reference[rule.name] = _restored(rule, reference[rule.name])
        evaluation = evaluate_poll(previous, day, answer, RULES, states, IST)
        full = Poll(
            evaluation.snapshot, evaluation.changes, evaluation.baseline, evaluation.new_day
        )
        assert full.changed_keys is None
        produced = _by_rule(evaluation.alerts)
        expected_alerts: list[Alert] = []
        for rule in RULES:
            where = f"seed {seed}, poll {number}, rule {rule.name} {rule}"
            before, reference_before = states.get(rule.name), reference.get(rule.name)
            after, alerts = rule.evaluate(reference_before, full)
            expected_alerts.extend(alerts)
            assert evaluation.states[rule.name] == after, where
            assert produced.get(rule.name, []) == alerts, where
            assert rule.dump_entries(before, evaluation.states[rule.name]) == rule.dump_entries(
                reference_before, after
            ), where
            reference[rule.name] = after
            seen["carried forward"] += before is not None and evaluation.states[rule.name] is before
            seen["several alerts"] += len(alerts) > 1
            seen.update(a.state for a in alerts)
            seen.update("repeat" for a in alerts if a.message.startswith("Still"))
        assert evaluation.alerts == expected_alerts, f"seed {seed}, poll {number}"
        seen["new day"] += evaluation.new_day
        seen["carried row"] += bool(evaluation.snapshot.carried)
        seen["judged in part"] += not (evaluation.baseline or evaluation.new_day) and len(
            evaluation.changes
        ) < len(evaluation.snapshot.positions)
        states = dict(evaluation.states)
        previous, day = evaluation.snapshot, evaluation.trading_day
    # The premise: the sequences reach every case the shortcut has to get right.
    for case in (
        "carried forward", "several alerts", AlertState.FIRING, AlertState.RESOLVED, "repeat",
        "new day", "carried row", "judged in part",
    ):  # fmt: skip
        assert seen[case] > 0, f"seed {seed} never reached: {case}"


def test_every_condition_kind_is_covered() -> None:
    """A new condition kind must be added to KIND_OPTIONS to be checked here."""
    assert set(KIND_OPTIONS) == CONDITION_KINDS


def _rule_with(kind: str, size: Decimal) -> ConditionRule:
    """The kind's rule with its own options' numbers replaced by ``size``'s sign-matched value."""
    options = {
        field: (-size if isinstance(v, int) and v < 0 else size)
        for field, v in KIND_OPTIONS[kind].items()
    }
    rule = RULE_KINDS[kind]("settled", Severity.WARNING, PositionFilter(), {
        "scope": "position", **{f: str(v) for f, v in options.items()}
    })  # fmt: skip
    assert isinstance(rule, ConditionRule)
    return rule


FIGURES = st.decimals(min_value=-(10**7), max_value=10**7, places=2)


@pytest.mark.parametrize("kind", sorted(CONDITION_KINDS))
@given(
    size=st.decimals(min_value=Decimal("0.01"), max_value=10**6, places=2),
    figure=FIGURES,
    peak=st.none() | FIGURES,
)
def test_assess_is_settled(kind: str, size: Decimal, figure: Decimal, peak: Decimal | None) -> None:
    """Called again with the same figure and the peak it returned, ``assess`` returns the same
    outcome and peak: what lets an unchanged row with an inactive condition go unjudged."""
    rule = _rule_with(kind, size)
    outcome, kept = rule.assess(figure, peak)
    assert rule.assess(figure, kept) == (outcome, kept)


def test_an_unsettled_kind_would_be_caught() -> None:
    """The premise of the test above: a peak that keeps rising on the same figure fails it."""

    class Creeping(MtmBelow):
        __slots__ = ()

        def assess(self, mtm: Decimal, peak: Decimal | None) -> tuple[Any, Decimal | None]:
            return super().assess(mtm, peak)[0], (peak or mtm) + 1

    rule = Creeping(
        "creeping", Severity.WARNING, PositionFilter(), Scope.POSITION, Lifecycle(), Decimal(0)
    )
    outcome, kept = rule.assess(Decimal(5), None)
    assert rule.assess(Decimal(5), kept) != (outcome, kept)


# What is judged, seen through the rows a rule measures.


class Measured(MtmDrawdown):
    """A drawdown rule that notes every row it measures."""

    __slots__ = ()
    seen: ClassVar[list[str]] = []  # the one log of the tests below, cleared by each

    def measure(self, position: Position) -> Decimal | None:
        Measured.seen.append(position.key.token)
        return position.mtm


DEFAULT = Lifecycle()


def measured(scope: Scope = Scope.POSITION, lifecycle: Lifecycle = DEFAULT) -> Measured:
    Measured.seen.clear()
    return Measured("dd", Severity.WARNING, PositionFilter(), scope, lifecycle, Decimal(1000))


def firing(peak: int, clear_since: datetime | None = None) -> Tracked:
    return Tracked(Condition(None, T0, T0, clear_since), Decimal(peak))


def test_a_poll_that_changed_nothing_judges_only_the_conditions_that_time_moves() -> None:
    """Unchanged rows: 1 is inactive and 2 fires with nothing to repeat, both carried forward
    unjudged; 3 waits out ``for`` and 4 counts ``keep_firing_for``: judged. With a
    ``repeat_interval`` (and no ``for``) the firing 2 is judged too, and repeats."""
    five = timedelta(minutes=5)
    rule = measured(lifecycle=Lifecycle(hold_for=five, keep_firing_for=five))
    rows = [pos("1", 1, mtm=100), pos("2", 1, mtm=-2000), pos("3", 1, mtm=-1500), pos("4", 1)]
    state = {
        key("1"): Tracked(INACTIVE, Decimal(100)),
        key("2"): firing(0),
        key("3"): Tracked(Condition(pending_since=T0), Decimal(0)),
        key("4"): firing(0, clear_since=T0),
    }
    later = snap(*rows, at=T0 + timedelta(minutes=1))
    after, alerts = rule.evaluate(state, Poll(later, (), False, False, frozenset()))
    assert (after, alerts, Measured.seen) == (state, [], ["3", "4"])
    assert after is state
    repeating = measured(lifecycle=Lifecycle(repeat_interval=timedelta(minutes=1)))
    _, alerts = repeating.evaluate(state, Poll(later, (), False, False, frozenset()))
    assert [a.message.split(":")[0] for a in alerts] == [
        "Still",  # 2
        "MTM drawdown on SYM3 (nse_fo NRML)",  # 3: pending no more
    ]
    assert Measured.seen == ["2", "3", "4"]


def test_changed_rows_are_judged_in_row_order_and_removed_ones_dropped() -> None:
    """Rows 3 and 1 moved (listed in that row order), 2 is removed, 4 did not move: the alerts
    come in row order, 2's state is gone, 4's is the same object."""
    rule = measured()
    inactive = Tracked(INACTIVE, Decimal(0))
    state = {key(t): inactive for t in "1234"}
    rows = [pos("3", 1, mtm=-1500), pos("4", 1, mtm=0), pos("1", 1, mtm=-1200)]
    changed = frozenset({key("1"), key("2"), key("3")})
    after, alerts = rule.evaluate(state, Poll(snap(*rows), (), False, False, changed))
    assert Measured.seen == ["3", "1"]
    assert [a.key for a in alerts] == [key("3"), key("1")]
    assert list(after) == [key("1"), key("3"), key("4")]
    assert after[key("4")] is inactive


def test_an_account_condition_is_not_judged_while_inactive_and_nothing_changed() -> None:
    """Inactive and no row changed: the very same state; pending: judged, and it fires."""
    rule = measured(Scope.ACCOUNT)
    rows = [pos("1", 1, mtm=-100)]
    state: ConditionState = {None: Tracked(INACTIVE, Decimal(0))}
    same, _ = rule.evaluate(state, Poll(snap(*rows), (), False, False, frozenset()))
    assert (same is state, Measured.seen) == (True, [])
    hold = Lifecycle(hold_for=timedelta(seconds=30))
    pending = MtmDrawdown(
        "dd", Severity.WARNING, PositionFilter(), Scope.ACCOUNT, hold, Decimal(50)
    )
    waiting: ConditionState = {None: Tracked(Condition(pending_since=T0), Decimal(0))}
    later = snap(*rows, at=T0 + timedelta(minutes=1))
    _, [alert] = pending.evaluate(waiting, Poll(later, (), False, False, frozenset()))
    assert alert.state is AlertState.FIRING


@pytest.mark.parametrize(
    ("state", "baseline", "new_day", "changed"),
    [
        (None, False, False, frozenset()),  # first poll, a rule new to a reload
        ({}, True, False, frozenset()),  # a baseline
        ({}, False, True, frozenset()),  # a new day
        ({}, False, False, None),  # no previous snapshot to say what changed
    ],
)
def test_without_this_rules_state_of_the_last_snapshot_every_row_is_judged(
    state: ConditionState | None,
    baseline: bool,
    new_day: bool,
    changed: frozenset[PositionKey] | None,
) -> None:
    rule = measured()
    rows = [pos("1", 1, mtm=100), pos("2", 1, mtm=-50)]
    after, _ = rule.evaluate(state, Poll(snap(*rows), (), baseline, new_day, changed))
    assert Measured.seen == ["1", "2"]
    assert after == {
        key("1"): Tracked(INACTIVE, Decimal(100)),
        key("2"): Tracked(INACTIVE, Decimal(-50)),
    }


def test_dump_entries_of_a_state_carried_whole_is_empty() -> None:
    """The state handed back unchanged writes nothing; an equal copy neither."""
    rule = measured()
    state: ConditionState = {key("1"): firing(10), None: Tracked(INACTIVE, Decimal(3))}
    assert rule.dump_entries(state, state) == {}
    assert rule.dump_entries(state, dict(state)) == {}
    assert len(rule.dump_entries(None, state)) == 2
