"""evaluate_poll: the silent baseline, trading-day rollover per timezone, account filters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from monitor.model import Alert, Change, ChangeKind, Severity, Snapshot
from monitor.pipeline import Evaluation, evaluate_poll, trading_day
from monitor.rules.base import Globs, Poll, PositionFilter
from monitor.rules.conditions import Scope
from monitor.rules.lifecycle import Lifecycle
from monitor.rules.mtm_drawdown import MtmDrawdown
from monitor.rules.new_short import NewShort
from monitor.rules.squared_off import SquaredOff
from tests.snapshots import IST, UTC, drawdown_entry, key, pos, snap


def evaluate_after(previous: Snapshot, current: Snapshot, rules, states, tz) -> Evaluation:
    """evaluate_poll with the previous poll's own trading day, as the engine passes it."""
    return evaluate_poll(previous, trading_day(previous.taken_at, tz), current, rules, states, tz)


NEW_SHORT = NewShort("fresh-short", Severity.WARNING, PositionFilter())
SQUARED_OFF = SquaredOff("closed", Severity.INFO, PositionFilter())
DRAWDOWN = MtmDrawdown(
    "desk-drawdown", Severity.CRITICAL, PositionFilter(), Scope.ACCOUNT, Lifecycle(), Decimal(1000)
)
RULES = (NEW_SHORT, SQUARED_OFF, DRAWDOWN)

# 23:59 and 00:01 in India: the IST midnight between them is 18:30 UTC, not a UTC midnight.
IST_2359 = datetime(2026, 11, 23, 23, 59, tzinfo=IST)
IST_0001 = datetime(2026, 11, 24, 0, 1, tzinfo=IST)
UTC_1829 = datetime(2026, 11, 23, 18, 29, tzinfo=UTC)
UTC_1831 = datetime(2026, 11, 23, 18, 31, tzinfo=UTC)


def _day_pair(first: datetime, second: datetime) -> tuple[Snapshot, Snapshot]:
    """Yesterday's snapshot (long 25, MTM 5000) and today's (row gone, new short, MTM 1000)."""
    yesterday = snap(pos("1", 25, mtm=5000), at=first)
    today = snap(pos("2", -10, mtm=1000), at=second)
    return yesterday, today


def test_instants_are_the_same() -> None:
    """The IST and UTC literals used below name the same two instants."""
    assert (IST_2359, IST_0001) == (UTC_1829, UTC_1831)


def test_trading_day_is_the_local_date() -> None:
    """trading_day converts to the account's zone before taking the date."""
    assert trading_day(UTC_1831, IST) == datetime(2026, 11, 24).date()
    assert trading_day(IST_0001, UTC) == datetime(2026, 11, 23).date()


def test_first_poll_is_a_silent_baseline() -> None:
    """No previous snapshot: every row is ADDED, no alerts even for shorts; peaks are set."""
    rows = (pos("1", -25, mtm=-300), pos("2", 0, mtm=100))
    evaluation = evaluate_poll(None, None, snap(*rows), RULES, {}, IST)
    assert evaluation.baseline is True
    assert evaluation.new_day is False
    assert evaluation.alerts == []
    assert evaluation.changes == [Change(ChangeKind.ADDED, p.key, None, p) for p in rows]
    assert evaluation.states == {
        "fresh-short": None,
        "closed": None,
        "desk-drawdown": {None: drawdown_entry(-200)},
    }


def test_second_poll_reports_in_rule_order() -> None:
    """After the baseline, alerts come rule by rule, in the order the rules are given."""
    first = snap(pos("1", 25, mtm=5000), pos("2", 0, mtm=0))
    evaluation = evaluate_poll(None, None, first, RULES, {}, IST)
    second = snap(pos("1", 0, mtm=0), pos("2", -10, mtm=1000))
    evaluation = evaluate_after(first, second, RULES, evaluation.states, IST)
    assert (evaluation.baseline, evaluation.new_day) == (False, False)
    assert [(a.rule, a.key.token if a.key else None) for a in evaluation.alerts] == [
        ("fresh-short", "2"),
        ("closed", "1"),
        ("desk-drawdown", None),
    ]


def test_ist_midnight_is_a_new_day() -> None:
    """23:59 -> 00:01 IST for an IST account: new day, no square-off, peak reset."""
    yesterday, today = _day_pair(IST_2359, IST_0001)
    states = evaluate_poll(None, None, yesterday, RULES, {}, IST).states
    assert states["desk-drawdown"] == {None: drawdown_entry(5000)}
    evaluation = evaluate_after(yesterday, today, RULES, states, IST)
    assert (evaluation.baseline, evaluation.new_day) == (False, True)
    # Only the new short; the vanished long is an intraday reset and MTM 1000 is the new peak.
    assert [a.rule for a in evaluation.alerts] == ["fresh-short"]
    assert evaluation.states["desk-drawdown"] == {None: drawdown_entry(1000)}


def test_ist_midnight_given_in_utc_is_still_a_new_day_for_an_ist_account() -> None:
    """The day is taken in the account's zone whatever offset the timestamps carry."""
    yesterday, today = _day_pair(UTC_1829, UTC_1831)
    states = evaluate_poll(None, None, yesterday, RULES, {}, IST).states
    assert evaluate_after(yesterday, today, RULES, states, IST).new_day is True


def test_ist_midnight_is_not_a_new_day_for_a_utc_account() -> None:
    """The same two instants for an account in UTC fall on one day: the vanished long is carried
    (its MTM still counts, so the peak rises to 6000), not dropped as at a day's start."""
    yesterday, today = _day_pair(UTC_1829, UTC_1831)
    states = evaluate_poll(None, None, yesterday, RULES, {}, UTC).states
    evaluation = evaluate_after(yesterday, today, RULES, states, UTC)
    assert (evaluation.baseline, evaluation.new_day) == (False, False)
    assert [a.rule for a in evaluation.alerts] == ["fresh-short"]
    assert evaluation.snapshot.carried == {key("1")}
    assert evaluation.states["desk-drawdown"] == {None: drawdown_entry(6000)}


def test_utc_midnight_is_a_new_day_for_a_utc_account() -> None:
    """23:59 -> 00:01 UTC rolls the day over for a UTC account (alphapoint)."""
    yesterday, today = _day_pair(
        datetime(2026, 11, 23, 23, 59, tzinfo=UTC), datetime(2026, 11, 24, 0, 1, tzinfo=UTC)
    )
    states = evaluate_poll(None, None, yesterday, RULES, {}, UTC).states
    evaluation = evaluate_after(yesterday, today, RULES, states, UTC)
    assert evaluation.new_day is True
    assert [a.rule for a in evaluation.alerts] == ["fresh-short"]
    assert evaluation.states["desk-drawdown"] == {None: drawdown_entry(1000)}
    # The same instants are 05:29 and 05:31 in India: one day there.
    assert evaluate_after(yesterday, today, RULES, states, IST).new_day is False


def test_a_later_date_after_a_gap_is_a_new_day() -> None:
    """A poll days after the previous one (a long weekend) starts a new day."""
    yesterday, today = _day_pair(
        datetime(2026, 11, 20, 15, 30, tzinfo=IST), datetime(2026, 11, 23, 9, 15, tzinfo=IST)
    )
    assert evaluate_after(yesterday, today, RULES, {}, IST).new_day is True


def test_same_day_is_not_a_new_day() -> None:
    """Two polls on one local date are not a new day."""
    yesterday, today = _day_pair(
        datetime(2026, 11, 23, 0, 0, tzinfo=IST), datetime(2026, 11, 23, 23, 59, 59, tzinfo=IST)
    )
    assert evaluate_after(yesterday, today, RULES, {}, IST).new_day is False


def test_clock_stepping_back_across_midnight_is_not_a_new_day() -> None:
    """A poll stamped before the previous day's midnight does not reset anything."""
    after_midnight, before_midnight = _day_pair(IST_0001, IST_2359)
    states = evaluate_poll(None, None, after_midnight, RULES, {}, IST).states
    evaluation = evaluate_after(after_midnight, before_midnight, RULES, states, IST)
    assert evaluation.new_day is False
    # The same day goes on: the vanished long is carried, as within any day.
    assert [a.rule for a in evaluation.alerts] == ["fresh-short"]
    assert [p.key.token for p in evaluation.snapshot.positions.values()] == ["2", "1"]
    assert evaluation.states["desk-drawdown"] == {None: drawdown_entry(6000)}


def test_rules_excluded_by_account_neither_run_nor_get_state() -> None:
    """A rule whose accounts filter excludes the account raises nothing and has no state."""
    other_short = NewShort("other-short", Severity.WARNING, PositionFilter(Globs.of(["samco-*"])))
    other_dd = MtmDrawdown(
        "other-dd",
        Severity.CRITICAL,
        PositionFilter(Globs.of(["samco-*"])),
        Scope.ACCOUNT,
        Lifecycle(),
        Decimal(1),
    )
    mine = NewShort("mine", Severity.WARNING, PositionFilter(Globs.of(["kotak-*"])))
    rules = (other_short, other_dd, mine)
    stale = {"other-dd": {None: drawdown_entry(99999)}}
    first = snap(pos("1", 0, mtm=10))
    evaluation = evaluate_poll(None, None, first, rules, stale, IST)
    assert evaluation.states == {"mine": None}
    second = snap(pos("1", -5, mtm=-10))
    evaluation = evaluate_after(first, second, rules, stale, IST)
    assert [a.rule for a in evaluation.alerts] == ["mine"]
    assert evaluation.states == {"mine": None}


def test_states_are_passed_to_the_rules() -> None:
    """The rule state given for a rule name is what the rule continues from: the peak of the
    previous poll, not the MTM of this one."""
    states = {"desk-drawdown": {None: drawdown_entry(9000)}}
    previous, current = snap(pos("1", 1, mtm=9000)), snap(pos("1", 1, mtm=8000))
    evaluation = evaluate_after(previous, current, [DRAWDOWN], states, IST)
    assert [a.details["drawdown"] for a in evaluation.alerts] == [Decimal(1000)]
    assert states == {"desk-drawdown": {None: drawdown_entry(9000)}}  # not mutated


@dataclass(frozen=True, slots=True)
class PollRecorder:
    """A rule that keeps the polls it is handed."""

    polls: list[Poll] = field(default_factory=list)
    name: str = "recorder"
    severity: Severity = Severity.INFO
    filter: PositionFilter = field(default_factory=PositionFilter)
    kind: str = "recorder"

    def evaluate(self, state: object, poll: Poll) -> tuple[object, list[Alert]]:
        self.polls.append(poll)
        return None, []

    def dump_state(self, state: object) -> object:
        return None

    def load_state(self, account: str, data: object) -> object:
        return None

    def dump_entries(self, before: object, after: object) -> None:
        return None


def test_rules_are_told_which_rows_changed_or_turned_carried() -> None:
    """Changed rows and rows carried or back from a carry are named; a baseline and a new day
    name none (None): there is no previous snapshot of the day to compare with."""
    rules = [PollRecorder()]
    first = snap(pos("1", 1, mtm=1), pos("2", 1, mtm=2), pos("3", 1, mtm=3))
    evaluation = evaluate_poll(None, None, first, rules, {}, IST)
    missing = snap(pos("1", 1, mtm=9), pos("2", 1, mtm=2), at=first.taken_at + timedelta(seconds=5))
    carrying = evaluate_after(evaluation.snapshot, missing, rules, {}, IST)
    assert carrying.snapshot.carried == {key("3")}
    back = snap(*first.positions.values(), at=missing.taken_at + timedelta(seconds=5))
    evaluate_after(carrying.snapshot, back, rules, {}, IST)
    tomorrow = snap(*first.positions.values(), at=first.taken_at + timedelta(days=1))
    evaluate_after(carrying.snapshot, tomorrow, rules, {}, IST)
    assert [poll.changed_keys for poll in rules[0].polls] == [
        None,
        {key("1"), key("3")},
        {key("1"), key("3")},
        None,
    ]
