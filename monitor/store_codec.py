"""How values are written to the state file's columns and read back.

Figures are stored as their exact decimal text and times as ISO 8601 with their offset. Reading
checks every value, so a damaged or hand-edited file fails naming its table, column and row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from monitor.model import Position, PositionKey, Snapshot

T = TypeVar("T")


def position_row(position: Position) -> tuple[str | None, ...]:
    """The ``positions`` row of a position: figures as their exact decimal text, NULL when
    unknown."""
    p = position
    return (
        *p.key, p.symbol, str(p.net_qty), _decimal(p.avg_price), _decimal(p.ltp),
        _decimal(p.realized), _decimal(p.unrealized), _decimal(p.mtm),
    )  # fmt: skip


def _decimal(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


class BadValue(Exception):
    """A stored value that does not decode; the message says where it is and why."""


def decode_account(
    account: str,
    row: Sequence[Any],
    position_rows: Iterable[Sequence[Any]],
    state_rows: Iterable[Sequence[Any]],
    entry_rows: Iterable[Sequence[Any]],
) -> tuple[Snapshot, date, dict[str, object]]:
    """The snapshot, trading day and rule states (by rule name) of an account's rows, or a
    BadValue naming the first value that does not decode."""
    where = f"account {account!r}"
    broker = _decoded(row[0], str, "accounts.broker", where)
    taken_at = _decoded(row[1], _aware_time, "accounts.taken_at", where)
    trading_day = _decoded(row[2], date.fromisoformat, "accounts.trading_day", where)
    positions = {}
    carried = []
    for seg, tok, prod, symbol, carried_flag, *numbers in position_rows:
        at = f"{where}, position {seg!r} {tok!r} {prod!r}"
        parts = (
            _decoded(value, str, f"positions.{column}", at)
            for value, column in ((seg, "exchange_segment"), (tok, "token"), (prod, "product"))
        )
        key = PositionKey(account, *parts)
        name = _decoded(symbol, str, "positions.symbol", at)
        net_qty, avg, ltp, realized, unrealized, mtm = (
            None if value is None else _decoded(value, _number, f"positions.{column}", at)
            for value, column in zip(numbers, _NUMBER_COLUMNS, strict=True)
        )
        if net_qty is None:
            raise BadValue(f"positions.net_qty of {at}: missing")
        positions[key] = Position(key, name, net_qty, avg, ltp, realized, unrealized, mtm)
        if carried_flag not in (0, 1):
            raise BadValue(f"positions.carried of {at}: {carried_flag!r} is not 0 or 1")
        if carried_flag:
            carried.append(key)
    states: dict[str, object] = {
        rule: _decoded(state, json.loads, "rule_states.state", f"{where}, rule {rule!r}")
        for rule, state in state_rows
    }
    # A state kept as entries reads back as the list of its entries.
    entries: dict[str, list[object]] = {}
    for rule, entry, state in entry_rows:
        at = f"{where}, rule {rule!r}, entry {entry!r}"
        entries.setdefault(rule, []).append(_decoded(state, json.loads, "rule_entries.state", at))
    states.update(entries)
    snapshot = Snapshot(account, broker, taken_at, positions, frozenset(carried))
    return snapshot, trading_day, states


_NUMBER_COLUMNS = ("net_qty", "avg_price", "ltp", "realized", "unrealized", "mtm")


def _decoded(value: object, decode: Callable[[str], T], column: str, row: str) -> T:
    """``decode(value)`` of a text column, or a BadValue naming the column, row and value."""
    try:
        if not isinstance(value, str):
            raise TypeError(f"not text but {type(value).__name__}")
        return decode(value)
    except (ValueError, TypeError, ArithmeticError, RecursionError) as err:
        shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:37]}..."
        raise BadValue(f"{column} of {row}: {shown} does not decode ({err})") from None


def _number(text: str) -> Decimal:
    try:
        number = Decimal(text)
    except ArithmeticError:
        raise ValueError("not a number") from None
    if not number.is_finite():
        raise ValueError("not a finite number")
    return number


def _aware_time(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        raise ValueError("no UTC offset")
    return at
