"""Exchange calendars: NSE from the holidays package, MCX's built-in list, rules.yaml's changes,
the old ``holidays:`` list, and the notice of a calendar nearing its last known date."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime, time
from pathlib import Path

import pytest

from monitor import config
from monitor.calendars import exchange_calendars, running_out
from monitor.cli import main
from monitor.config import AccountConfig
from tests.snapshots import IST

REPUBLIC_DAY = date(2026, 1, 26)  # a Monday: both exchanges closed
HOLI = date(2026, 3, 3)  # a Tuesday: NSE closed, MCX trades its evening session
DIWALI = date(2026, 11, 8)  # a Sunday: Muhurat trading, announced shortly before
ACCOUNTS = (
    "accounts:\n"
    '  - id: equity\n    broker: torus\n    credentials: {token: "${T}"}\n    window: nse\n'
    '  - id: commodity\n    broker: torus\n    credentials: {token: "${T}"}\n    window: mcx\n'
)
RULES = "rules:\n  - name: r\n    kind: new_short\n"


def at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), IST)


def load(tmp_path: Path, text: str) -> tuple[AccountConfig, ...]:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return config.load(path).accounts


def check(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, list[str], list[str]]:
    code = main(["check", str(path)])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def test_nse_holidays_are_the_circulars_of_2025_and_2026() -> None:
    """The package's XNSE dates, spot-checked against NSE's lists; weekends are not listed."""
    closed = exchange_calendars()["nse"].closed
    for day in (date(2025, 2, 26), date(2025, 10, 21), REPUBLIC_DAY, HOLI, date(2026, 6, 26)):
        assert day in closed, day
    assert date(2026, 11, 9) not in closed  # the Monday after Diwali trades
    assert DIWALI not in closed  # a Sunday: no session to close
    assert len([d for d in closed if d.year == 2026]) == 15


def test_republic_day_closes_both_and_holi_leaves_mcx_its_evening(tmp_path: Path) -> None:
    """Republic Day: nse and mcx closed. Holi: nse closed all day, mcx closed in the morning
    and open for its evening session (17:00 to its close)."""
    equity, commodity = load(tmp_path, ACCOUNTS + RULES)
    for hour in (10, 18):
        assert not equity.window.is_open(at(REPUBLIC_DAY, hour))
        assert not commodity.window.is_open(at(REPUBLIC_DAY, hour))
    assert not equity.window.is_open(at(HOLI, 10))
    assert not equity.window.is_open(at(HOLI, 18))
    assert not commodity.window.is_open(at(HOLI, 10))
    assert commodity.window.is_open(at(HOLI, 18))
    assert commodity.window.opened_at(at(HOLI, 18)) == at(HOLI, 17)
    # After Holi's session, the last close is that evening's, not the Monday before.
    assert commodity.window.last_close(at(date(2026, 3, 4), 8)) == at(HOLI, 23, 55)
    assert equity.window.last_close(at(date(2026, 3, 4), 8)) == at(date(2026, 3, 2), 15, 30)
    # New Year's Day: MCX's morning only.
    new_year = date(2026, 1, 1)
    assert commodity.window.is_open(at(new_year, 10))
    assert not commodity.window.is_open(at(new_year, 18))


def test_changes_add_remove_and_a_muhurat_session(tmp_path: Path) -> None:
    """holidays_add closes a date, holidays_remove gives one back its usual hours (dropping
    MCX's evening-only session too), and a session opens a Sunday evening."""
    equity, commodity = load(
        tmp_path,
        "calendars:\n"
        "  nse:\n"
        "    holidays_add: [2026-11-09]\n"
        "    holidays_remove: [2026-03-03]\n"
        "    sessions:\n"
        '      - {date: 2026-11-08, start: "18:00", end: "19:15"}  # Muhurat trading\n'
        "  mcx:\n"
        '    holidays_remove: ["2026-03-03"]\n' + ACCOUNTS + RULES,
    )
    assert not equity.window.is_open(at(date(2026, 11, 9), 10))
    assert equity.window.is_open(at(HOLI, 10))
    assert commodity.window.is_open(at(HOLI, 10))
    assert not equity.window.is_open(at(DIWALI, 17, 59))
    assert equity.window.is_open(at(DIWALI, 18, 30))
    assert not equity.window.is_open(at(DIWALI, 19, 15))
    assert equity.window.last_close(at(DIWALI, 20)) == at(DIWALI, 19, 15)
    assert not commodity.window.is_open(at(DIWALI, 18, 30))  # only nse's session was added


def test_a_custom_window_follows_the_calendar_it_names(tmp_path: Path) -> None:
    """``calendar: mcx`` on a custom window: MCX's holidays and sessions; without one, none."""
    [named, plain] = load(
        tmp_path,
        "accounts:\n"
        '  - id: named\n    broker: torus\n    credentials: {token: "${T}"}\n'
        '    window: {days: mon-fri, start: "10:00", end: "16:00", calendar: mcx}\n'
        '  - id: plain\n    broker: torus\n    credentials: {token: "${T}"}\n'
        '    window: {days: mon-fri, start: "10:00", end: "16:00"}\n' + RULES,
    )
    assert not named.window.is_open(at(REPUBLIC_DAY, 11))
    assert not named.window.is_open(at(HOLI, 11)) and named.window.is_open(at(HOLI, 18))
    assert plain.window.is_open(at(REPUBLIC_DAY, 11))


def test_the_old_holidays_list_closes_every_window_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``holidays:`` still closes its dates for nse, mcx and custom windows; check says what
    replaces it, naming the line, and exits 0."""
    path = tmp_path / "rules.yaml"
    custom = (
        '  - id: custom\n    broker: torus\n    credentials: {token: "${T}"}\n'
        '    window: {days: mon-fri, start: "10:00", end: "16:00"}\n'
    )
    path.write_text("timezone: Asia/Kolkata\nholidays: [2026-11-09]\n" + ACCOUNTS + custom + RULES)
    for account in config.load(path).accounts:
        assert not account.window.is_open(at(date(2026, 11, 9), 11)), account.id
    code, out, err = check(capsys, path)
    assert code == 0 and out[0].startswith(f"{path}: OK: 3 accounts")
    assert (
        f"warning: {path}: holidays: deprecated: it closes these dates for every window; list"
        " them under calendars.nse.holidays_add and calendars.mcx.holidays_add (the exchange"
        " holidays are built in), or drop it (line 2)"
    ) in err


def test_bad_calendars_are_named_by_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad dates, times, fields and names: one line each, through ``check``."""
    path = tmp_path / "rules.yaml"
    path.write_text(
        "calendars:\n"  # 1
        "  nse:\n"  # 2
        "    holidays_add: [2026-11-09, 09-11-2026]\n"  # 3
        "    holidays_remove:\n"  # 4
        "      - 2026-11-09\n"  # 5
        "    sessions:\n"  # 6
        '      - {date: 2026-11-08, start: "19:15", end: "18:00"}\n'  # 7
        "      - {date: '2026-11-31', start: '18:00', end: '19:00'}\n"  # 8
        "      - {date: 2026-11-07, start: 18:00, end: '19:00'}\n"  # 9
        "      - {date: 2026-11-06}\n"  # 10
        "    holiday_add: [2026-11-10]\n"  # 11
        "  bse: {}\n"  # 12
        "  mcx: [2026-11-09]\n" + "accounts:\n"  # 13  # 14
        '  - id: a\n    broker: torus\n    credentials: {token: "${T}"}\n'  # 15-17
        '    window: {days: mon-fri, start: "10:00", end: "16:00", calendar: lse}\n'  # 18
         + RULES
    )
    code, out, err = check(capsys, path)
    nse = f"{path}: calendar 'nse'"
    assert (code, out) == (2, [])
    assert err == [
        f"{nse}: holidays_add[1]: must be a date such as 2026-01-26; got '09-11-2026' (line 3)",
        f"{nse}: holidays_remove: 2026-11-09 is also in holidays_add (line 3) (line 5)",
        f"{nse}: sessions[0]: start must be before end on the same day (line 7)",
        f"{nse}: sessions[1].date: must be a date such as 2026-11-08; got '2026-11-31' (line 8)",
        f"{nse}: sessions[2]: must be a time such as 09:15; got 1080"
        ' (quote times: "18:00") (line 9)',
        f"{nse}: sessions[3]: must be {{date, start, end}} (line 10)",
        f"{nse}: holiday_add: unknown field (line 11)",
        f"{path}: calendars: bse: unknown calendar; expected nse, mcx (line 12)",
        f"{path}: calendars: mcx: must be a mapping of holidays_add, holidays_remove, sessions"
        " (line 13)",
        f"{path}: account 'a': window.calendar: unknown calendar 'lse'; expected nse, mcx"
        " (line 18)",
    ]


def test_a_second_session_on_one_date_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two sessions on one date would leave one silently unused."""
    path = tmp_path / "rules.yaml"
    path.write_text(
        "calendars:\n  nse:\n    sessions:\n"
        '      - {date: 2026-11-08, start: "18:00", end: "19:15"}\n'
        '      - {date: 2026-11-08, start: "20:00", end: "21:00"}\n' + RULES
    )
    code, _, err = check(capsys, path)
    assert code == 2
    assert err == [
        f"{path}: calendar 'nse': sessions[1].date: a second session on 2026-11-08"
        " (the first is on line 4) (line 5)"
    ]


def test_a_calendar_nearing_its_end_says_so_and_then_every_weekday_trades() -> None:
    """Sixty days ahead of its last known date a calendar warns; after it, weekdays trade."""
    nse = exchange_calendars()["nse"]
    assert running_out(nse, date(2026, 10, 31)) is None
    assert running_out(nse, date(2026, 11, 1)) == (
        "calendar nse: exchange holidays known through 2026-12-31 (end); after that every"
        " weekday counts as a trading day: upgrade position-monitor or list them under"
        " calendars.nse.holidays_add"
    )
    assert "(ended)" in str(running_out(nse, date(2027, 1, 1)))
    assert date(2027, 1, 26) not in nse.closed  # Republic Day 2027: not yet published


def test_the_holidays_package_needs_no_pandas_or_numpy() -> None:
    """Building the calendars imports neither (a fresh interpreter, so nothing is cached)."""
    code = (
        "import sys; from monitor.calendars import exchange_calendars; exchange_calendars();"
        " print(sorted({'pandas', 'numpy'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"


def test_a_date_that_does_not_exist_is_a_marked_yaml_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """2026-02-30 written bare is read as a date by YAML: one line with its place, no crash."""
    path = tmp_path / "rules.yaml"
    path.write_text("calendars:\n  nse:\n    holidays_add: [2026-02-30]\n" + RULES)
    code, _, err = check(capsys, path)
    assert (code, err) == (
        2,
        [
            f"{path}: invalid YAML: '2026-02-30' is not a date: day is out of range for month"
            " (line 3, column 20)"
        ],
    )
