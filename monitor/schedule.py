"""Trading windows: when an account is polled (pure; times are local to the account's zone)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Window:
    """Days of the week (0 = Monday) and a daily start and end; ``always`` ignores both."""

    days: frozenset[int]
    start: time
    end: time
    always: bool = False

    def is_open(self, now: datetime, holidays: Collection[date] = ()) -> bool:
        """True when ``now`` (local) falls inside the window on a trading day."""
        if self.always:
            return True
        return self._trades(now.date(), holidays) and self.start <= now.time() < self.end

    def opened_at(self, now: datetime) -> datetime | None:
        """When today's window opened (local), or None for a window that never closes."""
        return None if self.always else datetime.combine(now.date(), self.start, now.tzinfo)

    def last_close(self, now: datetime, holidays: Collection[date] = ()) -> datetime | None:
        """The most recent close at or before ``now`` (local), within the last week."""
        if self.always:
            return None
        for back in range(8):
            day = now.date() - timedelta(days=back)
            close = datetime.combine(day, self.end, now.tzinfo)
            if close <= now and self._trades(day, holidays):
                return close
        return None

    def _trades(self, day: date, holidays: Collection[date]) -> bool:
        return day.weekday() in self.days and day not in holidays


ALWAYS = Window(frozenset(range(7)), time(0), time(0), always=True)
WEEKDAYS = frozenset(range(5))
PRESETS = {
    "nse": Window(WEEKDAYS, time(9, 15), time(15, 30)),
    "mcx": Window(WEEKDAYS, time(9, 0), time(23, 30)),
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
        return time.fromisoformat(text)
    except ValueError:
        raise ValueError(f"must be a time such as 09:15; got {text!r}") from None
