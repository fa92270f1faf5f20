"""Trading windows: when an account is polled (pure; times are local to the account's zone).

A window is weekly hours plus a calendar: the dates its exchange is closed and the dates it
keeps other hours (an evening session only, a Muhurat session on a Sunday). Calendars are
built once when rules.yaml is read (``monitor/calendars/``); a window only looks dates up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Session:
    """The hours of one day that trades other than its week's hours; ``start`` < ``end``."""

    start: time
    end: time


@dataclass(frozen=True, slots=True)
class Calendar:
    """An exchange's closed dates and special sessions, and the last date they are known for.

    A session overrides everything else about its date: it is the only time that day trades,
    whatever its weekday and even when the date is also closed (Muhurat trading on Diwali).
    """

    name: str = ""
    closed: frozenset[date] = frozenset()
    sessions: Mapping[date, Session] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    known_through: date | None = None  # None: nothing to run out (a list the file gives)


NO_CALENDAR = Calendar()


@dataclass(frozen=True, slots=True)
class Window:
    """Days of the week (0 = Monday), a daily start and end, and a calendar; ``always``
    ignores all three.

    ``zone`` pins an exchange's hours to its own clock (NSE hours are Indian hours whatever the
    account's zone); without one the times are read in the zone of the ``now`` given.
    """

    days: frozenset[int]
    start: time
    end: time
    always: bool = False
    zone: ZoneInfo | None = None
    calendar: Calendar = NO_CALENDAR

    def hours(self, day: date) -> Session | None:
        """The hours ``day`` trades, or None when it does not."""
        session = self.calendar.sessions.get(day)
        if session is not None:
            return session
        if day.weekday() in self.days and day not in self.calendar.closed:
            return Session(self.start, self.end)
        return None

    def is_open(self, now: datetime) -> bool:
        """True when ``now`` falls inside the window's hours of its day."""
        if self.always:
            return True
        now = self._local(now)
        hours = self.hours(now.date())
        return hours is not None and hours.start <= now.time() < hours.end

    def opened_at(self, now: datetime) -> datetime | None:
        """When today's window opened, or None for a window that never closes."""
        if self.always:
            return None
        now = self._local(now)
        hours = self.hours(now.date())
        start = self.start if hours is None else hours.start
        return datetime.combine(now.date(), start, now.tzinfo)

    def last_close(self, now: datetime) -> datetime | None:
        """The most recent close at or before ``now``, within the last week."""
        if self.always:
            return None
        now = self._local(now)
        for back in range(8):
            day = now.date() - timedelta(days=back)
            hours = self.hours(day)
            if hours is None:
                continue
            close = datetime.combine(day, hours.end, now.tzinfo)
            if close <= now:
                return close
        return None

    def _local(self, now: datetime) -> datetime:
        return now.astimezone(self.zone) if self.zone is not None else now


ALWAYS = Window(frozenset(range(7)), time(0), time(0), always=True)
WEEKDAYS = frozenset(range(5))
_INDIA = ZoneInfo("Asia/Kolkata")
PRESETS = {
    "nse": Window(WEEKDAYS, time(9, 15), time(15, 30), zone=_INDIA),
    # MCX closes at 23:30, or 23:55 while the US keeps daylight time: the later close all
    # year costs a few polls of an unchanged book in winter and misses nothing in summer.
    "mcx": Window(WEEKDAYS, time(9, 0), time(23, 55), zone=_INDIA),
    "always": ALWAYS,
}
# The presets that follow an exchange's calendar (``monitor/calendars/``).
EXCHANGES = ("nse", "mcx")


def parse_days(text: str) -> frozenset[int]:
    """``mon-fri``, ``mon,wed,fri`` or ``sat``: day names, never numbers (cron's start at 0)."""
    days: set[int] = set()
    for part in text.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in DAY_NAMES or (last and last not in DAY_NAMES):
            raise ValueError(f"days must be day names such as mon-fri; got {text!r}")
        start, end = DAY_NAMES.index(first), DAY_NAMES.index(last or first)
        if end < start:
            raise ValueError(f"days run forwards, such as mon-fri; got {text!r}")
        days.update(range(start, end + 1))
    return frozenset(days)


def parse_clock(text: object) -> time:
    """``09:15`` as a time of day."""
    if not isinstance(text, str):
        raise ValueError(f"must be a time such as 09:15; got {text!r}")
    try:
        parsed = time.fromisoformat(text)
    except ValueError:
        raise ValueError(f"must be a time such as 09:15; got {text!r}") from None
    if parsed.tzinfo is not None:
        raise ValueError(f"must be a local time without an offset, such as 09:15; got {text!r}")
    return parsed
