"""The one duration grammar: rules.yaml and /mute read durations alike, each with its bounds."""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitor.durations import parse_duration

WIDE = {"minimum": timedelta(0), "maximum": timedelta(days=365)}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500ms", timedelta(milliseconds=500)),
        ("5s", timedelta(seconds=5)),
        ("1.5s", timedelta(seconds=1.5)),
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        (" 5 s ", timedelta(seconds=5)),
        ("30M", timedelta(minutes=30)),
        ("10000s", timedelta(seconds=10000)),
    ],
)
def test_units_from_milliseconds_to_days(text: str, expected: timedelta) -> None:
    """ms, s, m, h and d, with a whole or decimal number, any case, spaces around."""
    assert parse_duration(text, **WIDE) == expected


@pytest.mark.parametrize(
    "text", ["5", "", "s", "5 minutes", "1w", "-5s", "5s5", "1e3s", "½h", "\u0665s"]
)
def test_anything_else_is_refused_with_the_grammar(text: str) -> None:
    """A bare number is refused: it could mean seconds or minutes. Digits are ASCII."""
    with pytest.raises(ValueError, match="must be a duration like 5s, 500ms or 1m"):
        parse_duration(text, **WIDE)


def test_bounds_are_the_callers() -> None:
    """Both bounds are inclusive; outside them the reason names them."""
    bounds = {"minimum": timedelta(milliseconds=500), "maximum": timedelta(days=1)}
    assert parse_duration("500ms", **bounds) == timedelta(milliseconds=500)
    assert parse_duration("24h", **bounds) == timedelta(days=1)
    for text in ("499ms", "0s", "1441m", "99999999999999h"):
        with pytest.raises(ValueError, match=f"must be from 500ms to 1d; got '{text}'"):
            parse_duration(text, **bounds)


def test_numbers_too_large_for_a_timedelta_are_out_of_bounds() -> None:
    """A number of a thousand digits is refused by the bound, not an overflow."""
    with pytest.raises(ValueError, match="must be from"):
        parse_duration("9" * 1000 + "d", minimum=timedelta(0), maximum=timedelta.max)
