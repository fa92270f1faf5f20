"""NSE's trading holidays, from the ``holidays`` package: ``financial_holidays("XNSE")``.

The package takes each year from NSE's holiday circular for it (its ``XNSE`` class cites them,
2001 to 2026). Past the last circular it computes dates by rule and estimates the lunar ones,
which can be a day off; a wrong holiday would skip a day that trades, so only the years the
circulars cover are used. NSE's holidays on a Saturday or Sunday are not listed (no session).
"""

from __future__ import annotations

from datetime import date

import holidays

from monitor.schedule import Calendar

FIRST_YEAR = 2025
KNOWN_THROUGH = date(2026, 12, 31)


def calendar() -> Calendar:
    """NSE's closed weekdays from 2025 to the last year its circulars cover."""
    years = range(FIRST_YEAR, KNOWN_THROUGH.year + 1)
    closed = holidays.financial_holidays("XNSE", years=years)
    return Calendar("nse", frozenset(closed), known_through=KNOWN_THROUGH)
