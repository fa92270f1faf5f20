"""Trading windows: when an account is polled (pure; times are local to the account's zone)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Window:
    """Days of the week (0 = Monday) and a daily start and end; ``always`` ignores both.

    ``zone`` pins an exchange's hours to its own clock (NSE hours are Indian hours whatever the
    account's zone); without one the times are read in the zone of the ``now`` given.
    """

    days: frozenset[int]
    start: time
    end: time
    always: bool = False
    zone: ZoneInfo | None = None

    def is_open(self, now: datetime, holidays: Collection[date] = ()) -> bool:
        """True when ``now`` falls inside the window on a trading day."""
        if self.always:
            return True
        now = self._local(now)
        return self._trades(now.date(), holidays) and self.start <= now.time() < self.end

    def opened_at(self, now: datetime) -> datetime | None:
        """When today's window opened, or None for a window that never closes."""
        if self.always:
            return None
        now = self._local(now)
        return datetime.combine(now.date(), self.start, now.tzinfo)

    def last_close(self, now: datetime, holidays: Collection[date] = ()) -> datetime | None:
        """The most recent close at or before ``now``, within the last week."""
        if self.always:
            return None
        now = self._local(now)
        for back in range(8):
            day = now.date() - timedelta(days=back)
            close = datetime.combine(day, self.end, now.tzinfo)
            if close <= now and self._trades(day, holidays):
                return close
        return None

    def _local(self, now: datetime) -> datetime:
        return now.astimezone(self.zone) if self.zone is not None else now

    def _trades(self, day: date, holidays: Collection[date]) -> bool:
        return day.weekday() in self.days and day not in holidays


ALWAYS = Window(frozenset(range(7)), time(0), time(0), always=True)
WEEKDAYS = frozenset(range(5))
_INDIA = ZoneInfo("Asia/Kolkata")
PRESETS = {
    "nse": Window(WEEKDAYS, time(9, 15), time(15, 30), zone=_INDIA),
    "mcx": Window(WEEKDAYS, time(9, 0), time(23, 30), zone=_INDIA),
    "always": ALWAYS,
}


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
