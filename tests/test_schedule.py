"""Trading windows: presets, custom days, holidays, and the close before a given time."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from monitor.schedule import ALWAYS, PRESETS, Calendar, Session, Window, parse_clock, parse_days
from tests.snapshots import IST

NSE = PRESETS["nse"]
MONDAY = date(2026, 11, 23)


def at(day: date, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm, ss), IST)


@pytest.mark.parametrize(
    ("moment", "open_"),
    [
        (at(MONDAY, 9, 14, 59), False),
        (at(MONDAY, 9, 15), True),
        (at(MONDAY, 15, 29, 59), True),
        (at(MONDAY, 15, 30), False),
        (at(date(2026, 11, 28), 11, 0), False),  # Saturday
        (at(date(2026, 11, 29), 11, 0), False),  # Sunday
    ],
)
def test_nse_window(moment: datetime, open_: bool) -> None:
    """09:15 to 15:30, Monday to Friday, start inclusive and end exclusive."""
    assert NSE.is_open(moment) is open_


def test_holidays_close_the_whole_day_and_move_the_last_close() -> None:
    """A listed holiday has no window, and the close before it is the previous trading day's."""
    holiday = date(2026, 11, 24)  # a Tuesday
    closed = replace(NSE, calendar=Calendar("nse", frozenset({holiday})))
    assert not closed.is_open(at(holiday, 11, 0))
    assert closed.last_close(at(holiday, 16, 0)) == at(MONDAY, 15, 30)
    assert NSE.last_close(at(holiday, 16, 0)) == at(holiday, 15, 30)


def test_a_session_is_the_only_time_its_date_trades() -> None:
    """A session replaces the day's hours, on a holiday or a Sunday alike, and moves the open
    and the last close with it."""
    sunday, holiday = date(2026, 11, 29), date(2026, 11, 24)
    sessions = {sunday: Session(time(18), time(19, 15)), holiday: Session(time(17), time(23))}
    window = replace(NSE, calendar=Calendar("nse", frozenset({holiday}), sessions))
    assert window.is_open(at(sunday, 18, 0)) and not window.is_open(at(sunday, 19, 15))
    assert window.last_close(at(sunday, 20, 0)) == at(sunday, 19, 15)
    assert not window.is_open(at(holiday, 10, 0)) and window.is_open(at(holiday, 22, 59))
    assert window.opened_at(at(holiday, 18, 0)) == at(holiday, 17, 0)
    assert window.last_close(at(holiday, 16, 0)) == at(MONDAY, 15, 30)


def test_last_close_over_a_weekend() -> None:
    """On Monday morning the last close was Friday's."""
    assert NSE.last_close(at(MONDAY, 8, 0)) == at(date(2026, 11, 20), 15, 30)
    assert NSE.last_close(at(MONDAY, 15, 30)) == at(MONDAY, 15, 30)


def test_mcx_and_always() -> None:
    """MCX runs to 23:55 (its close while the US keeps daylight time); always never closes,
    whatever its calendar, and has no close."""
    assert PRESETS["mcx"].is_open(at(MONDAY, 23, 54))
    assert not PRESETS["mcx"].is_open(at(MONDAY, 23, 55))
    sunday = date(2026, 11, 29)
    always = replace(ALWAYS, calendar=Calendar("", frozenset({sunday})))
    assert always.is_open(at(sunday, 3, 0))
    assert ALWAYS.last_close(at(MONDAY, 3, 0)) is None


def test_day_names_and_clock_times() -> None:
    """Day names only (cron numbers start at Monday = 0 and confuse); times as HH:MM."""
    assert parse_days("mon-fri") == frozenset(range(5))
    assert parse_days("Mon, wed,fri") == frozenset({0, 2, 4})
    assert parse_days("sat-sun") == frozenset({5, 6})
    for bad in ("1-5", "fri-mon", "funday"):
        with pytest.raises(ValueError, match=r"day names|forwards"):
            parse_days(bad)
    assert parse_clock("09:15") == time(9, 15)
    with pytest.raises(ValueError, match="09:15"):
        parse_clock(555)  # YAML reads an unquoted 9:15 as the number 555
    assert Window(frozenset({5}), time(10), time(14)).is_open(at(date(2026, 11, 28), 12, 0))


def test_exchange_presets_keep_exchange_hours_in_any_account_zone() -> None:
    """nse is 09:15-15:30 in India even when the account's day is kept in UTC."""
    utc = ZoneInfo("UTC")
    assert NSE.is_open(datetime(2026, 11, 23, 4, 0, tzinfo=utc))  # 09:30 IST
    assert not NSE.is_open(datetime(2026, 11, 23, 10, 30, tzinfo=utc))  # 16:00 IST
    assert NSE.last_close(datetime(2026, 11, 23, 11, 0, tzinfo=utc)) == at(MONDAY, 15, 30)


def test_a_time_with_an_offset_is_refused() -> None:
    """Window times are wall-clock times of the window's zone: an offset would be ambiguous."""
    with pytest.raises(ValueError, match="without an offset"):
        parse_clock("09:15+05:30")
