"""What every condition kind shares: subjects, filters, unknown MTM, the day reset, the alerts of
a firing, a repeat and a resolution, and the state the store keeps (shown with ``mtm_below``)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal

from monitor.model import Alert, AlertState, Position, Severity
from monitor.rules.base import Globs, PositionFilter
from monitor.rules.conditions import ConditionState, Scope, Tracked
from monitor.rules.lifecycle import Condition, Lifecycle
from monitor.rules.mtm_below import MtmBelow
from tests.snapshots import T0, Number, key, poll, pos, snap


def at(minutes: float) -> datetime:
    """T0 plus ``minutes``."""
    return T0 + timedelta(minutes=minutes)


DEFAULT = Lifecycle()
EVERYTHING = PositionFilter()


def limit(
    scope: Scope = Scope.ACCOUNT,
    lifecycle: Lifecycle = DEFAULT,
    filter: PositionFilter = EVERYTHING,
) -> MtmBelow:
    """A loss limit at -1000."""
    return MtmBelow("loss-limit", Severity.CRITICAL, filter, scope, lifecycle, Decimal(-1000))


def fire(minute: float) -> Tracked:
    """A subject firing since ``minute``, with no peak."""
    return Tracked(Condition(None, at(minute), at(minute), None))


def step(
    rule: MtmBelow,
    state: ConditionState | None,
    minute: float,
    *rows: Position,
    new_day: bool = False,
) -> tuple[ConditionState, list[Alert]]:
    """One poll of ``rule`` at T0 + ``minute`` over ``rows``."""
    return rule.evaluate(state, poll(snap(*rows, at=at(minute)), new_day=new_day))


def legs(*mtms: Number | None) -> list[Position]:
    """Rows "1", "2", ... with the given MTMs."""
    return [pos(str(i), 1, mtm=m) for i, m in enumerate(mtms, start=1)]


# Account scope


def test_a_limit_already_breached_at_start_is_reported() -> None:
    """Conditions evaluate the first poll too: the baseline is no reason to stay silent."""
    _, [alert] = step(limit(), None, 0, *legs(-600, -400))
    assert (alert.state, alert.details) == (
        AlertState.FIRING,
        {"mtm": Decimal(-1000), "threshold": Decimal(-1000)},
    )


def test_account_figure_sums_the_filtered_rows_and_is_zero_without_rows() -> None:
    """Only rows passing the filters count; an account with none counted has MTM 0."""
    fno = limit(filter=PositionFilter(segments=Globs.of(["nse_fo"])))
    rows = [pos("1", 1, mtm=-900), pos("2", 1, segment="nse_cm", mtm=-5000)]
    assert fno.account_figure(snap(*rows)) == Decimal(-900)
    assert fno.account_figure(snap(pos("2", 1, segment="nse_cm", mtm=None))) == Decimal(0)
    assert step(fno, None, 0, *rows) == ({}, [])


def test_unknown_account_mtm_keeps_the_state() -> None:
    """A counted row without a price: no evaluation, a firing condition stays firing."""
    state, [_] = step(limit(), None, 0, *legs(-2000))
    assert step(limit(), state, 1, *legs(0, None)) == ({None: fire(0)}, [])


def test_unknown_account_mtm_keeps_a_pending_for() -> None:
    """A pending ``for`` keeps its start through an unknown poll and fires on time."""
    rule = limit(lifecycle=Lifecycle(hold_for=timedelta(minutes=5)))
    state, _ = step(rule, None, 0, *legs(-2000))
    state, _ = step(rule, state, 3, *legs(-2000, None))
    state, alerts = step(rule, state, 5, *legs(-2000))
    assert [a.at for a in alerts] == [at(5)]


def test_inactive_subjects_keep_no_state() -> None:
    """Nothing to remember, nothing stored: a clear account has no entry."""
    assert step(limit(), None, 0, *legs(500)) == ({}, [])


# Position scope


def test_position_scope_tracks_each_row_and_skips_filtered_ones() -> None:
    """Each row is its own subject; a row the filters exclude is neither evaluated nor kept."""
    rule = limit(Scope.POSITION, filter=PositionFilter(products=Globs.of(["NRML"])))
    rows = [pos("1", 1, mtm=-1500), pos("2", 1, mtm=0), pos("3", 1, product="MIS", mtm=-9000)]
    state, alerts = step(rule, None, 0, *rows)
    assert state == {key("1"): fire(0)}
    assert [(a.key, a.symbol, a.details["mtm"]) for a in alerts] == [
        (key("1"), "SYM1", Decimal(-1500))
    ]


def test_position_with_unknown_mtm_keeps_its_state() -> None:
    """A row without a price is not evaluated and keeps its condition."""
    rule = limit(Scope.POSITION, Lifecycle(send_resolved=True))
    state, _ = step(rule, None, 0, *legs(-1500))
    assert step(rule, state, 1, *legs(None)) == ({key("1"): fire(0)}, [])


def test_removed_row_ends_its_state_silently() -> None:
    """A position's condition ends with its row, without a resolved alert."""
    rule = limit(Scope.POSITION, Lifecycle(send_resolved=True))
    state, [_] = step(rule, None, 0, *legs(0, -1500))
    assert step(rule, state, 1, *legs(0)) == ({}, [])


# The trading day


def test_new_day_resets_silently() -> None:
    """A firing condition ends without a resolved alert on the new day; pending ones too."""
    rule = limit(lifecycle=Lifecycle(send_resolved=True))
    state, [_] = step(rule, None, 0, *legs(-2000))
    assert step(rule, state, 1, *legs(0), new_day=True) == ({}, [])
    pending = limit(lifecycle=Lifecycle(hold_for=timedelta(minutes=5)))
    state, _ = step(pending, None, 0, *legs(-2000))
    state, alerts = step(pending, state, 5, *legs(-2000), new_day=True)
    assert (state, alerts) == ({None: Tracked(Condition(pending_since=at(5)))}, [])


def test_still_active_on_a_new_day_fires_afresh() -> None:
    """The reset forgets yesterday's firing: a limit still breached is reported for the day."""
    state, [_] = step(limit(), None, 0, *legs(-2000))
    _, alerts = step(limit(), state, 1, *legs(-2000), new_day=True)
    assert [a.at for a in alerts] == [at(1)]


# Alerts


def test_firing_alert() -> None:
    """The first alert: the rule's severity, state firing, the figures, no ``since``."""
    _, [alert] = step(limit(), None, 0, *legs("-1234.5"))
    assert alert == Alert(
        rule="loss-limit",
        kind="mtm_below",
        severity=Severity.CRITICAL,
        account="kotak-main",
        key=None,
        symbol=None,
        at=T0,
        message="MTM at or below the limit on account kotak-main: MTM -1,234.50, limit -1,000.00",
        details={"mtm": Decimal("-1234.5"), "threshold": Decimal(-1000)},
        state=AlertState.FIRING,
    )


def test_repeat_alert_carries_current_figures_and_since() -> None:
    """A reminder says still, since when, with this poll's figures."""
    rule = limit(lifecycle=Lifecycle(repeat_interval=timedelta(minutes=10)))
    state, [_] = step(rule, None, 0, *legs(-1500))
    state, alerts = step(rule, state, 5, *legs(-1600))
    assert alerts == []
    _, [alert] = step(rule, state, 10, *legs(-1700))
    assert (alert.state, alert.at, alert.message, alert.details) == (
        AlertState.FIRING,
        at(10),
        "Still: MTM at or below the limit on account kotak-main since 09:20:05: "
        "MTM -1,700.00, limit -1,000.00",
        {"mtm": Decimal(-1700), "threshold": Decimal(-1000), "since": T0.isoformat()},
    )


def test_resolved_alert_with_send_resolved() -> None:
    """On resolving, send_resolved gives one alert in state resolved with the figures then."""
    rule = limit(Scope.POSITION, Lifecycle(send_resolved=True))
    state, [_] = step(rule, None, 0, *legs(-1500))
    state, [alert] = step(rule, state, 7, *legs(-200))
    assert state == {}
    assert alert.to_json() == {
        "rule": "loss-limit",
        "kind": "mtm_below",
        "severity": "critical",
        "state": "resolved",
        "account": "kotak-main",
        "exchange_segment": "nse_fo",
        "token": "1",
        "product": "NRML",
        "symbol": "SYM1",
        "at": "2026-11-23T09:27:05+05:30",
        "message": "Resolved: MTM at or below the limit on SYM1 (nse_fo NRML): "
        "MTM -200.00, limit -1,000.00",
        "details": {"mtm": -200, "threshold": -1000, "since": "2026-11-23T09:20:05+05:30"},
    }
    assert alert.to_line().split()[1] == "RESOLVED"


def test_resolving_without_send_resolved_is_silent() -> None:
    """The default: the condition re-arms and nothing is sent."""
    state, [_] = step(limit(), None, 0, *legs(-1500))
    assert step(limit(), state, 1, *legs(0)) == ({}, [])


# Stored state


def test_state_round_trips_through_json() -> None:
    """Every instant and the peak survive dump_state -> JSON -> load_state, keyed under the
    account that loads them."""
    state: ConditionState = {
        None: Tracked(Condition(at(1), None, None, None), Decimal("12.50")),
        key("7"): Tracked(Condition(None, at(2), at(3), at(4))),
    }
    dumped = json.loads(json.dumps(limit().dump_state(state)))
    assert dumped == [
        [None, None, None, "12.50", at(1).isoformat(), None, None, None],
        ["nse_fo", "7", "NRML", None, None, at(2).isoformat(), at(3).isoformat(),
         at(4).isoformat()],
    ]  # fmt: skip
    assert limit().load_state("kotak-main", dumped) == state


def test_dump_entries_marks_a_resolved_subject_gone() -> None:
    """Entry by entry: a subject that resolved (no longer kept) is written as None."""
    rule = limit(Scope.POSITION)
    first, _ = step(rule, None, 0, *legs(-1500, -1500))
    second, _ = step(rule, first, 1, *legs(-1500, 0))
    assert rule.dump_entries(first, second) == {'["nse_fo", "2", "NRML"]': None}
    assert rule.dump_entries(second, second) == {}
