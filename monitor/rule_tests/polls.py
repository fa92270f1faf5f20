"""A test's polls read and checked: their instants, generic rows, broker responses, quotes.

A ``generic`` poll is rows written in the test; any other broker's poll is its response as a
replay line holds it, so that ``replay``'s own code turns it into a snapshot.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Context, Decimal, InvalidOperation

from monitor import replay
from monitor.brokers._decode import MONEY, QUANTITY, unbounded_reason, within
from monitor.config.yaml_lines import LineList, LineMap
from monitor.model import Position, PositionKey
from monitor.rule_tests.cases import GENERIC, TestPoll
from monitor.rule_tests.problems import Problems

_GENERIC_POLL_FIELDS = ("at", "positions", "error")
_BROKER_POLL_FIELDS = ("at", "status", "body", "quotes", "error")
_ROW_FIELDS = ("segment", "token", "product", "symbol", "net_qty", "mtm")


def read_polls(
    problems: Problems,
    entry: LineMap,
    owner: str,
    broker: str,
    account: str,
    interval: timedelta | None,
) -> tuple[TestPoll, ...]:
    """The polls of one test entry, in order; each problem is recorded."""
    raw = entry.get("polls")
    if not isinstance(raw, LineList) or not raw:
        problems.add(entry.line_of("polls"), f"{owner}: polls", "required: a list of polls")
        return ()
    polls: list[TestPoll] = []
    previous: datetime | None = None
    for index, poll in enumerate(raw):
        line, where = raw.item_lines[index], f"{owner}: polls[{index}]"
        if not isinstance(poll, LineMap):
            problems.add(line, where, "must be a mapping")
            continue
        at = _at(problems, poll, where, previous, interval)
        if at is None:
            return ()  # later polls count from this one
        previous = at
        if broker == GENERIC:
            polls.append(_generic_poll(problems, poll, where, account, at))
        else:
            polls.append(_broker_poll(problems, poll, where, account, broker, at))
    return tuple(polls)


def _at(
    problems: Problems,
    poll: LineMap,
    where: str,
    previous: datetime | None,
    interval: timedelta | None,
) -> datetime | None:
    """The poll's instant: its ``at``, else ``interval`` after the poll before."""
    raw = poll.get("at")
    line = poll.line_of("at")
    if raw is None:
        if previous is None:
            problems.add(line, f"{where}: at", "required on the first poll")
        elif interval is None:
            problems.add(line, f"{where}: at", "required: the test sets no interval")
        else:
            return previous + interval
        return None
    at = raw
    if isinstance(raw, str):
        try:
            at = datetime.fromisoformat(raw)
        except ValueError:
            at = None
    if not isinstance(at, datetime) or at.tzinfo is None or not 1 < at.year < 9999:
        reason = f"must be an ISO 8601 time with a UTC offset, such as +05:30; got {str(raw)!r}"
        problems.add(line, f"{where}: at", reason)
        return None
    return at


def _generic_poll(
    problems: Problems, poll: LineMap, where: str, account: str, at: datetime
) -> TestPoll:
    """A poll written as rows (``positions``), or a failed one (``error``)."""
    problems.unknown_fields(poll, where, _GENERIC_POLL_FIELDS)
    error = poll.get("error")
    rows = poll.get("positions")
    if ("error" in poll) == ("positions" in poll):
        reason = "needs positions (a good poll, maybe []) or error (a failed poll), not both"
        problems.add(poll.line, where, reason)
        return TestPoll(poll.line, at, None, None, "")
    if error is not None:
        if not isinstance(error, str) or not error:
            problems.add(poll.line_of("error"), f"{where}: error", "must be a reason: timeout")
        return TestPoll(poll.line, at, None, None, str(error))
    if not isinstance(rows, LineList):
        reason = "must be a list of rows (an empty list is an empty answer)"
        problems.add(poll.line_of("positions"), f"{where}: positions", reason)
        return TestPoll(poll.line, at, (), None, None)
    positions: dict[PositionKey, Position] = {}
    for index, row in enumerate(rows):
        line, row_where = rows.item_lines[index], f"{where}: positions[{index}]"
        if not isinstance(row, LineMap):
            problems.add(line, row_where, "must be a mapping with segment, token, net_qty")
            continue
        position = _row(problems, row, row_where, account)
        if position is None:
            continue
        if position.key in positions:
            problems.add(line, row_where, "a second row with this segment, token and product")
        positions[position.key] = position
    return TestPoll(poll.line, at, tuple(positions.values()), None, None)


def _row(problems: Problems, row: LineMap, where: str, account: str) -> Position | None:
    """One generic row as a Position, or None when it has a problem."""
    before = len(problems.found)
    problems.unknown_fields(row, where, _ROW_FIELDS)
    text: dict[str, str] = {}
    for field, default in (("segment", None), ("token", None), ("product", ""), ("symbol", None)):
        value = row.get(field, default)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # an unquoted token such as 53179
        if value is None and field == "symbol":
            value = text.get("token", "")
        if not isinstance(value, str) or (default is None and not value):
            problems.add(row.line_of(field), f"{where}: {field}", "required: a non-empty string")
        text[field] = str(value)
    net_qty = _number(problems, row, "net_qty", where, QUANTITY, required=True)
    mtm = _number(problems, row, "mtm", where, MONEY, required=False)
    if len(problems.found) > before or net_qty is None:
        return None
    key = PositionKey(account, text["segment"], text["token"], text["product"])
    return Position(key, text["symbol"], net_qty, None, None, None, None, mtm)


def _number(
    problems: Problems, entry: LineMap, field: str, where: str, bound: Context, *, required: bool
) -> Decimal | None:
    """A figure written as a number or a decimal string; None when absent or null."""
    raw = entry.get(field)
    if raw is None:
        if required:
            problems.add(entry.line_of(field), f"{where}: {field}", "required: a number")
        return None
    try:
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise InvalidOperation
        value = Decimal(str(raw))
    except InvalidOperation:
        problems.add(entry.line_of(field), f"{where}: {field}", f"must be a number; got {raw!r}")
        return None
    if not within(value, bound):
        problems.add(entry.line_of(field), f"{where}: {field}", unbounded_reason(value, bound))
        return None
    return value


def _broker_poll(
    problems: Problems, poll: LineMap, where: str, account: str, broker: str, at: datetime
) -> TestPoll:
    """A broker's poll: its response (``status``, ``body``, ``quotes``) or a failure."""
    problems.unknown_fields(poll, where, _BROKER_POLL_FIELDS)
    error = poll.get("error")
    if error is not None and (not isinstance(error, str) or not error):
        problems.add(poll.line_of("error"), f"{where}: error", "must be a reason: timeout")
    status = poll.get("status")
    if status is not None and (isinstance(status, bool) or not isinstance(status, int)):
        reason = f"must be an HTTP status number; got {status!r}"
        problems.add(poll.line_of("status"), f"{where}: status", reason)
    if "body" not in poll and error is None:
        reason = "needs body (the broker's response) or error (a failed poll)"
        problems.add(poll.line, where, reason)
    body = None
    if "body" in poll:
        raw = poll["body"]
        try:
            # A string is a raw body that is not JSON, as in a replay file.
            body = (
                raw.encode() if isinstance(raw, str) else json.dumps(raw, allow_nan=False).encode()
            )
        except (TypeError, ValueError) as err:
            reason = f"must be the response as JSON data (quote dates and times): {err}"
            problems.add(poll.line_of("body"), f"{where}: body", reason)
    quotes = _quotes(problems, poll, where)
    record = replay.PollRecord(
        poll.line, at, account, broker, status if isinstance(status, int) else None, body,
        error if isinstance(error, str) else None, quotes,
    )  # fmt: skip
    return TestPoll(poll.line, at, None, record, None)


def _quotes(problems: Problems, poll: LineMap, where: str) -> dict[str, Decimal]:
    """A broker poll's quotes: instrument (``segment:token``) to price."""
    raw = poll.get("quotes")
    if raw is None:
        return {}
    if not isinstance(raw, LineMap):
        reason = "must map instrument (segment:token) to price"
        problems.add(poll.line_of("quotes"), f"{where}: quotes", reason)
        return {}
    quotes = {}
    for instrument in raw:
        price = _number(problems, raw, instrument, f"{where}: quotes", MONEY, required=True)
        if price is not None:
            quotes[str(instrument)] = price
    return quotes
