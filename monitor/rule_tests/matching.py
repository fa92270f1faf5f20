"""Expected alerts matched against produced ones, and each difference said in one line.

An expected alert names only the fields it cares about; ``details`` matches as a subset,
numbers by value and times by instant, so a test reads the way the alert is written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from monitor.model import Alert
from monitor.printable import printable
from monitor.rule_tests.cases import Expected


def differences(expected: Sequence[Expected], produced: Sequence[Alert]) -> list[str]:
    """How ``produced`` differs from ``expected``; empty when each expected alert matches the
    produced one in its place and there are no others.

    The two lists are aligned the way a diff aligns lines: an expected alert is paired with a
    produced one when that costs less than leaving both out (half the expected fields or more
    must match), matching pairs cost nothing, and a pair costs the share of its fields that
    differ. A pair that differs lists those fields.
    """
    produced_json = [alert.to_json() for alert in produced]
    lines = []
    for e, p in _alignment(expected, produced_json):
        if e is not None and p is not None:
            if wrong := mismatches(expected[e].fields, produced_json[p]):
                where = f"expected #{e + 1} (line {expected[e].line}) vs produced #{p + 1}"
                lines.append(f"{where}: {'; '.join(wrong)}")
        elif e is not None:
            lines.append(f"expected #{e + 1} (line {expected[e].line}): no alert produced for it")
        elif p is not None:
            rule = printable(produced[p].rule)
            lines.append(f"produced #{p + 1} ({rule}): not expected")
    return lines


_LEFT_OUT = Fraction(1, 2)  # the cost of an expected or a produced alert left unpaired


def _alignment(
    expected: Sequence[Expected], produced: Sequence[Mapping[str, object]]
) -> list[tuple[int | None, int | None]]:
    """The cheapest alignment, in order: (expected, produced) index pairs, None for no partner."""
    rows, cols = len(expected), len(produced)
    pair_cost = [
        [Fraction(len(mismatches(e.fields, p)), max(len(e.fields), 1)) for p in produced]
        for e in expected
    ]
    # cost[i][j]: the cheapest alignment of expected[i:] with produced[j:]
    cost = [[Fraction(0)] * (cols + 1) for _ in range(rows + 1)]
    for i in range(rows, -1, -1):
        for j in range(cols, -1, -1):
            if i == rows or j == cols:
                cost[i][j] = _LEFT_OUT * ((rows - i) + (cols - j))
            else:
                cost[i][j] = min(
                    pair_cost[i][j] + cost[i + 1][j + 1],
                    _LEFT_OUT + cost[i + 1][j],
                    _LEFT_OUT + cost[i][j + 1],
                )
    steps: list[tuple[int | None, int | None]] = []
    i = j = 0
    while i < rows or j < cols:
        if i < rows and j < cols and cost[i][j] == pair_cost[i][j] + cost[i + 1][j + 1]:
            steps.append((i, j))
            i, j = i + 1, j + 1
        elif i < rows and (j == cols or cost[i][j] == _LEFT_OUT + cost[i + 1][j]):
            steps.append((i, None))
            i += 1
        else:
            steps.append((None, j))
            j += 1
    return steps


def mismatches(expected: Mapping[str, object], produced: Mapping[str, object]) -> list[str]:
    """Each field of ``expected`` that ``produced`` (an alert's JSON) does not match.

    A mapping (``details``) matches as a subset; numbers match by value (25 and 25.0, a
    decimal string), times by instant (any offset).
    """
    found = []
    for field, want in expected.items():
        if field not in produced:
            found.append(f"{field}: the alert has no such field")
            continue
        got = produced[field]
        if isinstance(want, Mapping) and isinstance(got, Mapping):
            found += [f"{field}.{inner}" for inner in mismatches(want, got)]
        elif not _same(want, got):
            found.append(f"{field}: expected {shown(want)}, got {shown(got)}")
    return found


def _same(want: object, got: object) -> bool:
    """True when ``got`` matches ``want``: numbers by value, times by instant."""
    if want is None or got is None or isinstance(want, bool) or isinstance(got, bool):
        return want is got or (type(want) is type(got) and want == got)
    if isinstance(want, Mapping):
        return isinstance(got, Mapping) and not mismatches(want, got)
    if isinstance(want, list):
        return (
            isinstance(got, list)
            and len(want) == len(got)
            and all(_same(w, g) for w, g in zip(want, got, strict=True))
        )
    if want == got:
        return True
    want_time, got_time = _instant(want), _instant(got)
    if want_time is not None and got_time is not None:
        return want_time == got_time
    want_number, got_number = _decimal(want), _decimal(got)
    return want_number is not None and got_number is not None and want_number == got_number


def _instant(value: object) -> datetime | None:
    """``value`` as an aware time (an ISO 8601 string or a YAML time), else None."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    return value if isinstance(value, datetime) and value.tzinfo is not None else None


def _decimal(value: object) -> Decimal | None:
    """``value`` as a finite number (a JSON number or a decimal string), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        number = Decimal(str(value))
        return number if number.is_finite() else None
    except InvalidOperation:
        return None


def shown(value: object) -> str:
    """``value`` as one line of JSON, control characters written out."""
    return printable(json.dumps(value, default=_written, ensure_ascii=False))


def _written(value: object) -> str:
    """A YAML value that JSON lacks (an unquoted time, a date) as it reads in ISO form."""
    return value.isoformat() if isinstance(value, datetime | date) else str(value)
