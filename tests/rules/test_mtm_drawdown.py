"""``mtm_drawdown``: peaks, the fire-once latch, re-arming, day resets and unknown MTM."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.model import Alert, AlertState, Severity
from monitor.rules.base import PositionFilter
from monitor.rules.conditions import ConditionState, Scope
from monitor.rules.lifecycle import Lifecycle
from monitor.rules.mtm_drawdown import MtmDrawdown
from tests.snapshots import T0, Number, drawdown_entry, key, poll, pos, snap

T0_TEXT = T0.isoformat()

ACCOUNT_RULE = MtmDrawdown(
    "desk-drawdown", Severity.CRITICAL, PositionFilter(), Scope.ACCOUNT, Lifecycle(), Decimal(1000)
)
POSITION_RULE = MtmDrawdown(
    "leg-drawdown", Severity.WARNING, PositionFilter(), Scope.POSITION, Lifecycle(), Decimal(1000)
)


def account_step(
    state: ConditionState | None, *mtms: Number | None, new_day: bool = False
) -> tuple[ConditionState, list[Alert]]:
    """One poll of ACCOUNT_RULE over positions "0", "1", ... with the given MTMs."""
    rows = [pos(str(i), 1, mtm=m) for i, m in enumerate(mtms)]
    return ACCOUNT_RULE.evaluate(state, poll(snap(*rows), new_day=new_day))


def account_series(mtms: Sequence[Number]) -> list[bool]:
    """Feed one account MTM per poll from a fresh state; True where the poll alerted."""
    state: ConditionState | None = None
    fired = []
    for m in mtms:
        state, alerts = account_step(state, m)
        assert len(alerts) <= 1
        fired.append(bool(alerts))
    return fired


# Account scope


def test_first_poll_sets_the_peak_without_alerting() -> None:
    """The day's first poll records the account MTM as the armed peak."""
    assert account_step(None, 3000, 2000) == ({None: drawdown_entry(5000)}, [])


def test_exactly_the_threshold_fires() -> None:
    """peak - mtm == threshold fires (the comparison is >=)."""
    state, _ = account_step(None, 5000)
    state, alerts = account_step(state, 4000)
    assert state == {None: drawdown_entry(5000, T0)}
    assert len(alerts) == 1


def test_just_below_the_threshold_is_quiet() -> None:
    """A drawdown of 999.99 against a 1000 threshold raises nothing and stays armed."""
    state, _ = account_step(None, 5000)
    assert account_step(state, "4000.01") == ({None: drawdown_entry(5000)}, [])


def test_account_alert_contents() -> None:
    """The account alert names the account, has null key fields and mtm/peak/drawdown details."""
    state, _ = account_step(None, "3000.50", 2000)
    _, [alert] = account_step(state, "2000.25", 1000)
    assert alert == Alert(
        rule="desk-drawdown",
        kind="mtm_drawdown",
        severity=Severity.CRITICAL,
        account="kotak-main",
        key=None,
        symbol=None,
        at=T0,
        message=(
            "MTM drawdown on account kotak-main: 2,000.25 below the day's peak 5,000.50 "
            "(MTM 3,000.25, threshold 1,000.00)"
        ),
        details={
            "mtm": Decimal("3000.25"),
            "peak": Decimal("5000.50"),
            "drawdown": Decimal("2000.25"),
        },
    )
    assert alert.to_json() == {
        "rule": "desk-drawdown",
        "kind": "mtm_drawdown",
        "severity": "critical",
        "state": "firing",
        "account": "kotak-main",
        "exchange_segment": None,
        "token": None,
        "product": None,
        "symbol": None,
        "at": "2026-11-23T09:20:05+05:30",
        "message": alert.message,
        "details": {"mtm": 3000.25, "peak": 5000.5, "drawdown": 2000.25},
    }
    assert json.loads(alert.to_jsonl())["exchange_segment"] is None


def test_fires_once_then_stays_quiet_until_rearmed() -> None:
    """One alert per breach: quiet at/above the threshold and in the half-to-full band."""
    #                        peak  fire  deeper  band  back  half  deeper
    assert account_series([5000, 4000, 3500, 4400, 4000, 4500, 3000]) == [
        False, True, False, False, False, False, False,
    ]  # fmt: skip


def test_rearms_below_half_the_threshold_and_fires_again() -> None:
    """A drawdown under threshold/2 re-arms; the next breach fires again."""
    #                        peak  fire  499 re-arm  breach  quiet
    assert account_series([5000, 4000, 4501, 4000, 3000]) == [
        False, True, False, True, False,
    ]  # fmt: skip


def test_exactly_half_the_threshold_does_not_rearm() -> None:
    """A drawdown of exactly threshold/2 is not below half: the rule stays fired."""
    state, _ = account_step(None, 5000)
    state, _ = account_step(state, 4000)
    state, alerts = account_step(state, 4500)
    assert (state, alerts) == ({None: drawdown_entry(5000, T0)}, [])
    state, alerts = account_step(state, "4500.01")
    assert (state, alerts) == ({None: drawdown_entry(5000)}, [])


def test_new_peak_rearms() -> None:
    """After firing, a new peak re-arms and a drawdown from it fires again."""
    state, _ = account_step(None, 5000)
    state, [_] = account_step(state, 4000)
    state, alerts = account_step(state, 6000)
    assert (state, alerts) == ({None: drawdown_entry(6000)}, [])
    state, [alert] = account_step(state, 5000)
    assert alert.details["peak"] == Decimal(6000)
    assert alert.details["drawdown"] == Decimal(1000)


def test_fractional_new_peak_counts() -> None:
    """A peak higher by 0.01 is a new peak, and it re-arms a fired rule."""
    state, _ = account_step(None, 5000)
    state, [_] = account_step(state, 4000)
    assert account_step(state, "5000.01") == ({None: drawdown_entry("5000.01")}, [])


def test_mtm_equal_to_peak_keeps_the_peak() -> None:
    """A poll at the peak neither moves the peak nor fires."""
    state, _ = account_step(None, 5000)
    assert account_step(state, 5000) == ({None: drawdown_entry(5000)}, [])


def test_negative_mtm_drawdown() -> None:
    """Peaks and drawdowns work below zero: -100 to -1100 is a 1000 drawdown."""
    assert account_series([-100, -1100]) == [False, True]


def test_new_day_resets_the_peak() -> None:
    """On a new day yesterday's peak is gone: a lower MTM sets the new peak, no alert."""
    state, _ = account_step(None, 5000)
    state, alerts = account_step(state, 3000, new_day=True)
    assert (state, alerts) == ({None: drawdown_entry(3000)}, [])
    state, alerts = account_step(state, 2000)
    assert len(alerts) == 1
    assert alerts[0].details["peak"] == Decimal(3000)


def test_new_day_clears_the_fired_latch() -> None:
    """A rule that fired yesterday is armed again on the new day's first poll."""
    state, _ = account_step(None, 5000)
    state, [_] = account_step(state, 4000)
    state, alerts = account_step(state, 4000, new_day=True)
    assert (state, alerts) == ({None: drawdown_entry(4000)}, [])


def test_unknown_mtm_skips_the_poll_and_keeps_state() -> None:
    """A position without MTM makes the account MTM unknown: no alert, state unchanged."""
    state, _ = account_step(None, 5000)
    after, alerts = account_step(state, -100000, None)
    assert (after, alerts) == ({None: drawdown_entry(5000)}, [])
    # The peak and armed flag continue once MTM is known again.
    _, alerts = account_step(after, 4000, 0)
    assert len(alerts) == 1


def test_unknown_mtm_keeps_a_fired_latch() -> None:
    """A poll with unknown MTM neither re-arms nor fires."""
    state, _ = account_step(None, 5000)
    state, _ = account_step(state, 4000)
    assert account_step(state, 4999, None) == ({None: drawdown_entry(5000, T0)}, [])


def test_unknown_mtm_on_the_first_poll_sets_no_peak() -> None:
    """With no known MTM yet there is no peak; the next known poll sets it silently."""
    state, alerts = account_step(None, None)
    assert (state, alerts) == ({}, [])
    assert account_step(state, 100) == ({None: drawdown_entry(100)}, [])


def test_empty_account_has_zero_mtm() -> None:
    """An account with no positions has MTM 0, which is a known value."""
    assert account_step(None) == ({None: drawdown_entry(0)}, [])


def test_account_figure_sums_the_rows() -> None:
    """account_figure is the exact Decimal sum, or None when any counted row is unknown."""
    rows = (pos("1", 1, mtm="0.10"), pos("2", 1, mtm="0.20"))
    assert ACCOUNT_RULE.account_figure(snap(*rows)) == Decimal("0.30")
    assert ACCOUNT_RULE.account_figure(snap(*rows, pos("3", 0, mtm=None))) is None


# Position scope


def position_step(
    state: ConditionState | None, *rows: tuple[str, Number | None], new_day: bool = False
) -> tuple[ConditionState, list[Alert]]:
    """One poll of POSITION_RULE over (token, mtm) rows."""
    positions = [pos(token, 1, mtm=m) for token, m in rows]
    return POSITION_RULE.evaluate(state, poll(snap(*positions), new_day=new_day))


def test_position_scope_tracks_each_key() -> None:
    """Each position has its own peak; only the one that fell alerts, naming its key."""
    state, alerts = position_step(None, ("1", 5000), ("2", 100))
    assert (state, alerts) == (
        {key("1"): drawdown_entry(5000), key("2"): drawdown_entry(100)},
        [],
    )
    state, alerts = position_step(state, ("1", 4000), ("2", -800))
    assert state == {key("1"): drawdown_entry(5000, T0), key("2"): drawdown_entry(100)}
    assert [a.to_json() for a in alerts] == [
        {
            "rule": "leg-drawdown",
            "kind": "mtm_drawdown",
            "severity": "warning",
            "state": "firing",
            "account": "kotak-main",
            "exchange_segment": "nse_fo",
            "token": "1",
            "product": "NRML",
            "symbol": "SYM1",
            "at": "2026-11-23T09:20:05+05:30",
            "message": (
                "MTM drawdown on SYM1 (nse_fo NRML): 1,000.00 below the day's peak 5,000.00 "
                "(MTM 4,000.00, threshold 1,000.00)"
            ),
            "details": {"mtm": 4000, "peak": 5000, "drawdown": 1000},
        }
    ]


def test_position_scope_fires_once_and_rearms() -> None:
    """The latch works per position as for the account."""
    state, _ = position_step(None, ("1", 5000))
    fired = []
    for m in (4000, 3000, 4501, 4000):
        state, alerts = position_step(state, ("1", m))
        fired.append(len(alerts))
    assert fired == [1, 0, 0, 1]


def test_position_scope_keeps_the_peak_through_an_unknown_mtm() -> None:
    """A poll where the position has no MTM keeps its peak; the next known drop fires."""
    state, _ = position_step(None, ("1", 5000), ("2", 10))
    state, alerts = position_step(state, ("1", None), ("2", 20))
    assert (state, alerts) == (
        {key("1"): drawdown_entry(5000), key("2"): drawdown_entry(20)},
        [],
    )
    state, alerts = position_step(state, ("1", 4000), ("2", 20))
    assert [a.key for a in alerts] == [key("1")]


def test_position_scope_unknown_mtm_without_peak_adds_no_entry() -> None:
    """A position first seen without MTM gets no state entry."""
    assert position_step(None, ("1", None)) == ({}, [])


def test_position_scope_new_day_resets_every_peak() -> None:
    """On a new day each position's peak restarts from its first MTM of the day."""
    state, _ = position_step(None, ("1", 5000))
    state, alerts = position_step(state, ("1", 3000), new_day=True)
    assert (state, alerts) == ({key("1"): drawdown_entry(3000)}, [])


def test_position_scope_state_ends_when_the_row_is_removed() -> None:
    """A position's peak ends with its row: back the same day, it starts a new peak."""
    state, _ = position_step(None, ("1", 5000), ("2", 10))
    state, alerts = position_step(state, ("2", 10))
    assert (state, alerts) == ({key("2"): drawdown_entry(10)}, [])
    state, alerts = position_step(state, ("1", 5000 - 1000), ("2", 10))
    assert (state[key("1")], alerts) == (drawdown_entry(4000), [])


def test_position_scope_forgets_missing_rows_on_a_new_day() -> None:
    """The day's peaks, including those of rows no longer reported, reset with the day."""
    state, _ = position_step(None, ("1", 5000), ("2", 10))
    state, alerts = position_step(state, ("2", 10), new_day=True)
    assert (state, alerts) == ({key("2"): drawdown_entry(10)}, [])


# State persistence


def test_dump_and_load_state_round_trip() -> None:
    """dump_state gives plain JSON rows; load_state(account, json) restores the same state."""
    state: ConditionState = {
        None: drawdown_entry("5000.50", T0),
        key("53179", product="MIS"): drawdown_entry("-12.25"),
    }
    dumped = ACCOUNT_RULE.dump_state(state)
    assert dumped == [
        [None, None, None, "5000.50", None, T0_TEXT, T0_TEXT, None],
        ["nse_fo", "53179", "MIS", "-12.25", None, None, None, None],
    ]
    restored = ACCOUNT_RULE.load_state("kotak-main", json.loads(json.dumps(dumped)))
    assert restored == state
    assert str(restored[None].peak) == "5000.50"


def test_load_state_uses_the_given_account() -> None:
    """Position keys are rebuilt under the account that owns the stored row."""
    restored = POSITION_RULE.load_state(
        "other", [["nse_fo", "1", "NRML", "7", None, None, None, None]]
    )
    assert restored == {key("1", account="other"): drawdown_entry(7)}


def test_load_state_rejects_a_non_list() -> None:
    """Stored state of the wrong shape raises TypeError (the engine then starts afresh)."""
    with pytest.raises(TypeError, match="must be a list, not dict"):
        ACCOUNT_RULE.load_state("kotak-main", {"peak": "1"})


def test_restored_state_continues_the_latch() -> None:
    """A fired state that went through dump/load stays fired."""
    state, _ = account_step(None, 5000)
    state, _ = account_step(state, 4000)
    restored = ACCOUNT_RULE.load_state(
        "kotak-main", json.loads(json.dumps(ACCOUNT_RULE.dump_state(state)))
    )
    assert account_step(restored, 3000) == ({None: drawdown_entry(5000, T0)}, [])


def test_dump_entries_writes_only_the_peaks_that_moved() -> None:
    """Entry by entry: every row the first time, then only changed rows, None for a gone one."""
    first, _ = position_state_after(("1", 500), ("2", 10))
    assert POSITION_RULE.dump_entries(None, first) == {
        '["nse_fo", "1", "NRML"]': ["nse_fo", "1", "NRML", "500", None, None, None, None],
        '["nse_fo", "2", "NRML"]': ["nse_fo", "2", "NRML", "10", None, None, None, None],
    }
    second, _ = position_state_after(("1", 500), ("2", 20), state=first)
    assert POSITION_RULE.dump_entries(first, second) == {
        '["nse_fo", "2", "NRML"]': ["nse_fo", "2", "NRML", "20", None, None, None, None]
    }
    assert POSITION_RULE.dump_entries(second, second) == {}
    next_day, _ = position_state_after(("2", 20), state=second, new_day=True)
    assert POSITION_RULE.dump_entries(second, next_day) == {'["nse_fo", "1", "NRML"]': None}


def test_dumped_entries_load_back_as_the_state() -> None:
    """The rows of every entry, read back as a list, restore the same state."""
    state, _ = ACCOUNT_RULE.evaluate(None, poll(snap(pos("1", 1, mtm=5000))))
    rows = json.loads(json.dumps(list(ACCOUNT_RULE.dump_entries(None, state).values())))
    assert rows == [[None, None, None, "5000", None, None, None, None]]
    assert ACCOUNT_RULE.load_state("kotak-main", rows) == state


def position_state_after(
    *legs: tuple[str, Number], state: ConditionState | None = None, new_day: bool = False
) -> tuple[ConditionState, list[Alert]]:
    """One poll of POSITION_RULE over the given (token, mtm) legs."""
    rows = [pos(token, 1, mtm=mtm) for token, mtm in legs]
    return POSITION_RULE.evaluate(state, poll(snap(*rows), new_day=new_day))


# With the default options the rule behaves exactly as the fire-once latch it replaced. The
# reference below is that latch as it was written, kept here to compare against.


SIX = Decimal(6)  # small figures make exact thresholds and half-thresholds common


def reference_latch(threshold: Decimal, mtms: Sequence[tuple[Decimal | None, bool]]) -> list[str]:
    """The former rule over one subject: (MTM or None for unknown, new day) per poll; the
    alerts' (peak, drawdown) as text, "" where a poll raised nothing."""
    peak: Decimal | None = None
    fired = False
    out = []
    for mtm, new_day in mtms:
        if new_day:
            peak, fired = None, False
        alert = ""
        if mtm is None:
            pass
        elif peak is None or mtm > peak:
            peak, fired = mtm, False
        elif not fired and peak - mtm >= threshold:
            fired = True
            alert = f"{peak} {peak - mtm}"
        elif fired and (peak - mtm) * 2 < threshold:
            fired = False
        out.append(alert)
    return out


@given(
    polls=st.lists(
        st.tuples(
            st.one_of(st.none(), st.integers(-12, 12).map(Decimal)),
            st.sampled_from([False] * 9 + [True]),
        ),
        max_size=40,
    ),
    threshold=st.integers(1, 12).map(Decimal),
)
def test_default_lifecycle_matches_the_former_latch(
    polls: list[tuple[Decimal | None, bool]], threshold: Decimal
) -> None:
    """Account scope over random MTM sequences, unknown MTMs and new days: the same alerts,
    with the same peak and drawdown, as the former implementation."""
    rule = MtmDrawdown(
        "dd", Severity.WARNING, PositionFilter(), Scope.ACCOUNT, Lifecycle(), threshold
    )
    state: ConditionState | None = None
    produced = []
    for n, (mtm, new_day) in enumerate(polls):
        row = pos("1", 1, mtm=mtm)
        current = snap(row, at=T0 + timedelta(seconds=5 * n))
        state, alerts = rule.evaluate(state, poll(current, new_day=new_day))
        assert all(a.state is AlertState.FIRING for a in alerts)
        produced.append(" ".join(f"{a.details['peak']} {a.details['drawdown']}" for a in alerts))
    assert produced == reference_latch(threshold, polls)


@given(
    legs=st.lists(
        st.lists(st.one_of(st.none(), st.integers(-12, 12).map(Decimal)), min_size=3, max_size=3),
        max_size=30,
    )
)
def test_default_lifecycle_matches_the_former_latch_per_position(
    legs: list[list[Decimal | None]],
) -> None:
    """Position scope, three rows present at every poll, each with its own random MTM: each
    row alerts exactly where the former implementation did."""
    rule = MtmDrawdown("legs", Severity.WARNING, PositionFilter(), Scope.POSITION, Lifecycle(), SIX)
    produced: dict[str, list[str]] = {token: [] for token in "abc"}
    state: ConditionState | None = None
    for n, mtms in enumerate(legs):
        rows = [pos(token, 1, mtm=m) for token, m in zip("abc", mtms, strict=True)]
        state, alerts = rule.evaluate(state, poll(snap(*rows, at=T0 + timedelta(seconds=5 * n))))
        by_token = {a.key.token: a for a in alerts if a.key is not None}
        for token in "abc":
            alert = by_token.get(token)
            text = f"{alert.details['peak']} {alert.details['drawdown']}" if alert else ""
            produced[token].append(text)
    for i, token in enumerate("abc"):
        expected = reference_latch(SIX, [(m[i], False) for m in legs])
        assert produced[token] == expected
