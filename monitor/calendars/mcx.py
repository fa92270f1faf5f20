"""MCX's trading holidays: a built-in list, as no maintained library publishes MCX's.

MCX trades a morning session (09:00-17:00) and an evening session (17:00-23:30, 23:55 while the
US keeps daylight time). On most NSE holidays MCX closes its morning session only and trades
the evening; on a few it closes both; on New Year's Day it trades the morning only. Sources:
MCX's circulars "Trading holidays for the calendar year 2025" (December 2024) and "... 2026"
(December 2025) for the commodity derivatives segment, read as republished by brokers and the
press (the 2025 table as published by Rupeezy and NiftyTrader, the 2026 list as reported by
CNBC Awaaz on 30 December 2025); the circulars were not read directly. Check a date against
mcxindia.com before relying on it, and correct it in rules.yaml (``calendars``).
Muhurat sessions are announced a few days before Diwali: rules.yaml adds them.
"""

from __future__ import annotations

from datetime import date, time
from types import MappingProxyType

from monitor.schedule import Calendar, Session

KNOWN_THROUGH = date(2026, 12, 31)
MORNING = Session(time(9, 0), time(17, 0))
EVENING = Session(time(17, 0), time(23, 55))  # the preset's close; see monitor/schedule.py

# Both sessions closed.
CLOSED = frozenset({
    date(2025, 4, 18),  # Good Friday
    date(2025, 8, 15),  # Independence Day
    date(2025, 10, 2),  # Mahatma Gandhi Jayanti, Dussehra
    date(2025, 10, 21),  # Diwali Laxmi Pujan (Muhurat trading notified separately)
    date(2025, 12, 25),  # Christmas
    date(2026, 1, 26),  # Republic Day
    date(2026, 4, 3),  # Good Friday
    date(2026, 10, 2),  # Mahatma Gandhi Jayanti
    date(2026, 12, 25),  # Christmas
})  # fmt: skip

# One session only.
SESSIONS = MappingProxyType({
    date(2025, 1, 1): MORNING,  # New Year's Day
    date(2025, 2, 26): EVENING,  # Mahashivratri
    date(2025, 3, 14): EVENING,  # Holi
    date(2025, 3, 31): EVENING,  # Id-Ul-Fitr
    date(2025, 4, 10): EVENING,  # Shri Mahavir Jayanti
    date(2025, 4, 14): EVENING,  # Dr. Baba Saheb Ambedkar Jayanti
    date(2025, 5, 1): EVENING,  # Maharashtra Day
    date(2025, 8, 27): EVENING,  # Ganesh Chaturthi
    date(2025, 10, 22): EVENING,  # Diwali Balipratipada
    date(2025, 11, 5): EVENING,  # Guru Nanak Jayanti
    date(2026, 1, 1): MORNING,  # New Year's Day
    date(2026, 3, 3): EVENING,  # Holi
    date(2026, 3, 26): EVENING,  # Shri Ram Navami
    date(2026, 3, 31): EVENING,  # Shri Mahavir Jayanti
    date(2026, 4, 14): EVENING,  # Dr. Baba Saheb Ambedkar Jayanti
    date(2026, 5, 1): EVENING,  # Maharashtra Day
    date(2026, 5, 28): EVENING,  # Bakri Id
    date(2026, 6, 26): EVENING,  # Muharram
    date(2026, 9, 14): EVENING,  # Ganesh Chaturthi
    date(2026, 10, 20): EVENING,  # Dussehra
    date(2026, 11, 10): EVENING,  # Diwali Balipratipada
    date(2026, 11, 24): EVENING,  # Guru Nanak Jayanti
})  # fmt: skip


def calendar() -> Calendar:
    """MCX's closed days and single-session days of 2025 and 2026."""
    return Calendar("mcx", CLOSED, SESSIONS, KNOWN_THROUGH)
