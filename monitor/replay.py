"""``position-monitor replay``: recorded poll outcomes through the daemon's own pipeline.

A replay file is JSON Lines, one poll outcome per line, in time order (README "Replay files"):
``{"at", "account", "broker", "status", "body", "quotes"}`` or ``{"at", "account", "broker",
"error": "timeout"}``. ``body`` is the broker's JSON response; a JSON string stands for a raw
body that is not JSON (an HTML error page, a truncated response).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

import msgspec

from monitor.brokers import FORMATS
from monitor.brokers._decode import (
    MONEY,
    echo,
    reject_duplicate_keys,
    reject_duplicate_top_level_keys,
    unbounded_reason,
    within,
)
from monitor.brokers.errors import BadResponse, BrokerError, BrokerUnavailable, error_for_status
from monitor.brokers.transport import MAX_BODY_BYTES
from monitor.config import Config, open_regular
from monitor.engine import memory_engine
from monitor.model import Alert, Snapshot
from monitor.printable import printable


class ReplayLineError(Exception):
    """A line that is not a poll outcome at all; replay stops there."""


@dataclass(frozen=True, slots=True)
class PollRecord:
    """One line of a replay file, checked."""

    line: int
    at: datetime
    account: str
    broker: str
    status: int | None
    body: bytes | None
    error: str | None
    quotes: Mapping[str, Decimal]


# A line holds a body of up to the daemon's cap on a broker body, and room for the rest.
MAX_LINE_BYTES = MAX_BODY_BYTES + 1024 * 1024
# ``at`` is converted to every zone (offsets under a day): these keep that within datetime.
_EARLIEST = date.min + timedelta(days=1)
_LATEST = date.max - timedelta(days=1)


def read_records(path: Path) -> Iterator[PollRecord]:
    """Yield each line's record; raise ReplayLineError naming FILE:LINE on a bad line."""
    with open_regular(path) as lines:
        number = 0
        while raw := lines.readline(MAX_LINE_BYTES + 1):
            number += 1
            if len(raw) > MAX_LINE_BYTES:
                limit = f"longer than {MAX_LINE_BYTES} bytes (a body may have {MAX_BODY_BYTES})"
                raise ReplayLineError(f"{path}:{number}: {limit}")
            if not raw.strip():
                continue
            try:
                yield _record(raw, number)
            except ReplayLineError as err:
                raise ReplayLineError(f"{path}:{number}: {err}") from None


_LINE = msgspec.json.Decoder(dict[str, msgspec.Raw])  # ``body`` stays as written, unrounded
_VALUE = msgspec.json.Decoder(float_hook=Decimal)  # quotes keep every digit too


def _record(raw: bytes, line: int) -> PollRecord:
    try:
        fields = _LINE.decode(raw)
    except msgspec.ValidationError:
        raise ReplayLineError("must be a JSON object") from None
    except msgspec.DecodeError as err:
        raise ReplayLineError(f"not valid JSON ({err})") from None
    except RecursionError:
        raise ReplayLineError("nested too deeply") from None
    try:
        reject_duplicate_top_level_keys(raw.strip(), fields, "replay")
    except BadResponse as err:
        raise ReplayLineError(err.reason.removeprefix("body: ")) from None
    data = {name: _value(name, value) for name, value in fields.items() if name != "body"}
    for field in ("at", "account", "broker"):
        if not isinstance(data.get(field), str) or not data[field]:
            raise ReplayLineError(f"{field}: required, a non-empty string")
    if data["broker"] not in FORMATS:
        known = ", ".join(FORMATS)
        raise ReplayLineError(f"broker: unknown broker {data['broker']!r}; expected one of {known}")
    try:
        at = datetime.fromisoformat(str(data["at"]))
    except ValueError:
        raise ReplayLineError(f"at: not an ISO 8601 time: {data['at']!r}") from None
    if at.tzinfo is None:
        raise ReplayLineError(f"at: needs a UTC offset, such as +05:30: {data['at']!r}")
    if not _EARLIEST <= at.replace(tzinfo=None).date() <= _LATEST:
        raise ReplayLineError(f"at: out of range, {_EARLIEST} to {_LATEST}: {data['at']!r}")
    status = data.get("status")
    if status is not None and (isinstance(status, bool) or not isinstance(status, int)):
        raise ReplayLineError(f"status: must be an HTTP status number; got {status!r}")
    error = data.get("error")
    if error is not None and not isinstance(error, str):
        raise ReplayLineError(f'error: must be a string such as "timeout"; got {error!r}')
    body = bytes(fields.get("body", b"null"))
    # A JSON string stands for a raw body that is not JSON; anything else is the body itself.
    encoded = None if body == b"null" else body
    if body.startswith(b'"'):
        encoded = msgspec.json.decode(body, type=str).encode()
    return PollRecord(
        line,
        at,
        str(data["account"]),
        str(data["broker"]),
        status,
        encoded,
        error,
        _quotes(data.get("quotes")),
    )


def _value(name: str, raw: msgspec.Raw) -> object:
    """A field of the line other than ``body``, decoded; one holding a key twice is refused."""
    try:
        reject_duplicate_keys(bytes(raw), "replay", name)
        return _VALUE.decode(raw)
    except BadResponse as err:
        raise ReplayLineError(err.reason) from None
    except RecursionError:
        raise ReplayLineError(f"{name}: nested too deeply") from None


def _quotes(raw: object) -> dict[str, Decimal]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ReplayLineError("quotes: must map instrument to price")
    quotes = {}
    for instrument, price in raw.items():
        try:
            if isinstance(price, bool) or not isinstance(price, str | int | Decimal):
                raise InvalidOperation
            value = Decimal(price)
        except InvalidOperation:
            raise ReplayLineError(f"quotes.{instrument}: not a price: {echo(price)}") from None
        if not within(value, MONEY):
            reason = unbounded_reason(value, MONEY)
            raise ReplayLineError(f"quotes.{instrument}: not a price: {reason}")
        quotes[instrument] = value
    return quotes


def outcome(record: PollRecord) -> Snapshot:
    """The snapshot a recorded poll yields, or the BrokerError the daemon would have seen."""
    broker = record.broker
    if record.error is not None:
        raise BrokerUnavailable(broker, f"transport error: {record.error}")
    status = 200 if record.status is None else record.status
    if not 200 <= status < 300:
        raise error_for_status(broker, status)
    if record.body is None:
        raise BadResponse(broker, "body: missing", status=status)
    return FORMATS[broker].parse(
        record.body, account=record.account, taken_at=record.at, quotes=record.quotes
    )


def replay(
    path: Path, config: Config, emit: Callable[[Alert], None], warn: Callable[[str], None]
) -> None:
    """Feed every record through a fresh in-memory store; ``emit`` each alert in order.

    Failed polls go to ``warn`` and replay goes on; a bad line raises ReplayLineError.
    """
    with memory_engine(config.rules) as engine:
        for record in read_records(path):
            try:
                snapshot = outcome(record)
            except BrokerError as err:
                # The account and the broker's reason come from the file: one line each.
                failure = f"account {record.account}: poll failed: {err}"
                warn(f"{path}:{record.line}: {printable(failure)}")
                continue
            evaluation = engine.ingest(snapshot, config.timezone_for(record.broker))
            for alert in evaluation.alerts:
                emit(alert)
