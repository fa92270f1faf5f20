"""Exchange calendars for the ``nse`` and ``mcx`` windows, and rules.yaml's changes to them.

NSE's holidays come from the ``holidays`` package (``nse.py``), MCX's from a built-in list
(``mcx.py``). Each calendar knows the last date it covers; after it every weekday counts as a
trading day (polling a closed market costs a few polls of an unchanged book, skipping an open
one would miss alerts), and ``running_out`` says so ahead of time.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace
from datetime import date, timedelta
from types import MappingProxyType

from monitor.calendars import mcx, nse
from monitor.schedule import Calendar, Session

# Exchanges publish next year's list in December: warn from early November.
NOTICE = timedelta(days=60)


def exchange_calendars() -> dict[str, Calendar]:
    """The built-in calendar of each exchange window preset."""
    return {"nse": nse.calendar(), "mcx": mcx.calendar()}


def changed(
    calendar: Calendar,
    *,
    add: Collection[date] = (),
    remove: Collection[date] = (),
    sessions: Mapping[date, Session] | None = None,
) -> Calendar:
    """``calendar`` with dates closed (``add``), dates given back their week's hours
    (``remove``: neither closed nor a special session) and special sessions set."""
    dropped = set(add) | set(remove)
    kept = {day: hours for day, hours in calendar.sessions.items() if day not in dropped}
    kept.update(sessions or {})
    closed = (calendar.closed - set(remove)) | set(add)
    return replace(calendar, closed=frozenset(closed), sessions=MappingProxyType(kept))


def running_out(calendar: Calendar, today: date) -> str | None:
    """A warning when ``calendar``'s known dates end within ``NOTICE`` of ``today``."""
    end = calendar.known_through
    if end is None or today < end - NOTICE:
        return None
    tense = "ended" if today > end else "end"
    return (
        f"calendar {calendar.name}: exchange holidays known through {end.isoformat()}"
        f" ({tense}); after that every weekday counts as a trading day: upgrade position-monitor"
        f" or list them under calendars.{calendar.name}.holidays_add"
    )
