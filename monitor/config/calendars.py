"""The calendars section of rules.yaml: each exchange window's holidays and special sessions.

```yaml
calendars:
  nse:
    holidays_add: [2026-11-09]           # closed all day
    holidays_remove: [2026-03-26]        # trades its usual hours after all
    sessions:                            # the only hours that date trades
      - {date: 2026-11-08, start: "18:00", end: "19:15"}   # Muhurat trading
```

The older top-level ``holidays:`` list closes its dates for every window, custom ones included;
it still works, with a warning naming the replacement.
"""

from __future__ import annotations

from datetime import date

from monitor.calendars import changed, exchange_calendars
from monitor.config.problems import Problems
from monitor.config.yaml_lines import LineList, LineMap
from monitor.schedule import EXCHANGES, Calendar, Session, parse_clock

_FIELDS = ("holidays_add", "holidays_remove", "sessions")
_SESSION_FIELDS = ("date", "start", "end")
# The calendar of a custom window that names none: the old holidays list, if any.
UNNAMED = ""


def read_calendars(problems: Problems, document: LineMap) -> dict[str, Calendar]:
    """Each exchange's calendar with the file's changes, and the ``UNNAMED`` one."""
    everywhere = _legacy_holidays(problems, document)
    calendars = {n: changed(c, add=everywhere) for n, c in exchange_calendars().items()}
    calendars[UNNAMED] = Calendar(closed=everywhere)
    section = document.get("calendars")
    if section is None:
        return calendars
    if not isinstance(section, LineMap):
        reason = f"must map {' or '.join(EXCHANGES)} to holidays_add, holidays_remove, sessions"
        problems.problem("", "calendars", reason, document.line_of("calendars"))
        return calendars
    for name, entry in section.items():
        line = section.line_of(name)
        if name not in EXCHANGES:
            reason = f"unknown calendar; expected {', '.join(EXCHANGES)}"
            problems.problem("calendars", str(name), reason, line)
        elif not isinstance(entry, LineMap):
            reason = f"must be a mapping of {', '.join(_FIELDS)}"
            problems.problem("calendars", str(name), reason, line)
        else:
            calendars[name] = _changes(problems, entry, f"calendar '{name}'", calendars[name])
    return calendars


def _changes(problems: Problems, entry: LineMap, owner: str, calendar: Calendar) -> Calendar:
    """``calendar`` with one entry of the section applied."""
    problems.unknown_fields(entry, owner, _FIELDS)
    add = _dates(problems, entry, "holidays_add", owner)
    remove = _dates(problems, entry, "holidays_remove", owner)
    for day, line in remove.items():
        if day in add:
            reason = f"{day} is also in holidays_add (line {add[day]})"
            problems.problem(owner, "holidays_remove", reason, line)
    sessions = _sessions(problems, entry, owner)
    return changed(calendar, add=add, remove=remove, sessions=sessions)


def _legacy_holidays(problems: Problems, document: LineMap) -> frozenset[date]:
    """The top-level ``holidays`` list: dates no window opens, with its deprecation warning."""
    if "holidays" not in document:
        return frozenset()
    days = _dates(problems, document, "holidays", "")
    reason = (
        "deprecated: it closes these dates for every window; list them under"
        " calendars.nse.holidays_add and calendars.mcx.holidays_add (the exchange holidays"
        " are built in), or drop it"
    )
    problems.warning("", "holidays", reason, document.line_of("holidays"))
    return frozenset(days)


def _dates(problems: Problems, entry: LineMap, field: str, owner: str) -> dict[date, int]:
    """The dates listed under ``field``, each with its line; a bad one is a problem."""
    raw = entry.get(field)
    if raw is None:
        return {}
    line = entry.line_of(field)
    if not isinstance(raw, list):
        problems.problem(owner, field, "must be a list of dates such as 2026-01-26", line)
        return {}
    days: dict[date, int] = {}
    for index, item in enumerate(raw):
        item_line = raw.item_lines[index] if isinstance(raw, LineList) else line
        day = _date(item)
        if day is None:
            reason = f"must be a date such as 2026-01-26; got {item!r}"
            problems.problem(owner, f"{field}[{index}]", reason, item_line)
        else:
            days.setdefault(day, item_line)
    return days


def _sessions(problems: Problems, entry: LineMap, owner: str) -> dict[date, Session]:
    """``[{date, start, end}]``: the hours each date trades instead of its usual ones."""
    raw = entry.get("sessions")
    if raw is None:
        return {}
    if not isinstance(raw, list):
        reason = 'must be a list of {date, start, end}: {date: 2026-11-08, start: "18:00", ...}'
        problems.problem(owner, "sessions", reason, entry.line_of("sessions"))
        return {}
    sessions: dict[date, Session] = {}
    lines: dict[date, int] = {}
    for index, item in enumerate(raw):
        field = f"sessions[{index}]"
        line = raw.item_lines[index] if isinstance(raw, LineList) else entry.line_of("sessions")
        if not isinstance(item, LineMap) or set(item) != set(_SESSION_FIELDS):
            problems.problem(owner, field, "must be {date, start, end}", line)
            continue
        day = _date(item["date"])
        if day is None:
            reason = f"must be a date such as 2026-11-08; got {item['date']!r}"
            problems.problem(owner, f"{field}.date", reason, item.line_of("date"))
            continue
        try:
            start, end = parse_clock(item["start"]), parse_clock(item["end"])
        except ValueError as err:
            problems.problem(owner, field, f'{err} (quote times: "18:00")', line)
            continue
        if not start < end:
            problems.problem(owner, field, "start must be before end on the same day", line)
        elif day in sessions:
            reason = f"a second session on {day} (the first is on line {lines[day]})"
            problems.problem(owner, f"{field}.date", reason, item.line_of("date"))
        else:
            sessions[day], lines[day] = Session(start, end), line
    return sessions


def _date(raw: object) -> date | None:
    """A calendar date, written bare (2026-01-26) or quoted."""
    if type(raw) is date:
        return raw
    if isinstance(raw, str):
        try:
            return date.fromisoformat(raw) if len(raw) == 10 else None
        except ValueError:
            return None
    return None
