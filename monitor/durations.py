"""The one duration grammar of rules.yaml and the bot's commands: ``500ms``, ``5s``, ``1m``,
``2h``, ``1d``.

A unit is required: a bare ``5`` could mean seconds or minutes, and a guess would be silent.
"""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$", re.IGNORECASE | re.ASCII)
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: object, *, minimum: timedelta, maximum: timedelta) -> timedelta:
    """``text`` as a duration from ``minimum`` to ``maximum``; ValueError says what is wrong."""
    # Not only a string: a YAML field may hold a number (``5``), which is no duration either.
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"must be a duration like 5s, 500ms or 1m; got {text!r}")
    # Compared as seconds first: a huge number would overflow timedelta.
    seconds = float(match[1]) * _UNIT_SECONDS[match[2].lower()]
    if not minimum.total_seconds() <= seconds <= maximum.total_seconds():
        raise ValueError(f"must be from {_written(minimum)} to {_written(maximum)}; got {text!r}")
    return timedelta(seconds=seconds)


def _written(duration: timedelta) -> str:
    """``duration`` in the grammar's largest unit that holds it exactly: 500ms, 90s, 24h, 7d."""
    milliseconds = round(duration.total_seconds() * 1000)
    for unit in ("d", "h", "m", "s"):
        size = round(_UNIT_SECONDS[unit] * 1000)
        if milliseconds and milliseconds % size == 0:
            return f"{milliseconds // size}{unit}"
    return f"{milliseconds}ms"
