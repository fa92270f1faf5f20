"""Decoding helpers shared by the broker parsers: typed JSON in, BadResponse out."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import TypeVar

import msgspec

from monitor.brokers.errors import BadResponse

T = TypeVar("T")

_MSGSPEC_PATH = re.compile(r"^(?P<reason>.*?)(?: - at `\$\.?(?P<path>[^`]*)`)?$")
_MAX_ECHO = 40


def decode_json(body: bytes, into: type[T], broker: str) -> T:
    """Decode ``body`` straight into typed structs; any mismatch names the JSON path."""
    try:
        return msgspec.json.decode(body, type=into)
    except msgspec.ValidationError as err:
        raise validation_error(err, broker) from err
    except msgspec.DecodeError as err:
        raise BadResponse(broker, f"body: not valid JSON ({err})") from err


def validation_error(err: msgspec.ValidationError, broker: str, root: str = "") -> BadResponse:
    """The BadResponse naming the JSON path of a mismatch; ``root`` is where the decoded
    value sits in the body (``data[3]``), empty for the body itself."""
    message = str(err)
    match = _MSGSPEC_PATH.match(message)
    path = ".".join(part for part in (root, match and match["path"]) if part) or "body"
    reason = match["reason"] if match else message
    return BadResponse(broker, f"{path}: {reason}")


def echo(value: object) -> str:
    """A broker value quoted for an error message, cut short so a huge field cannot flood logs."""
    text = repr(value)
    return text if len(text) <= _MAX_ECHO else text[: _MAX_ECHO - 3] + "..."


def grouped_decimal(raw: str | int | float, broker: str, field: str) -> Decimal | None:
    """Parse numbers such as "1,550.00" or "1,55,000"; "--" and "" mean empty (None)."""
    if isinstance(raw, str):
        text = raw.strip().replace(",", "")
        if text in ("", "--"):
            return None
    else:
        text = repr(raw)
    try:
        if "_" in text:  # Decimal would read "1_0" as 10
            raise InvalidOperation
        value = Decimal(text)
    except InvalidOperation as err:
        raise BadResponse(broker, f"{field}: not a number: {echo(raw)}") from err
    return require_finite(value, broker, field)


def require_finite(value: Decimal, broker: str, field: str) -> Decimal:
    """Reject NaN and Infinity, which Decimal parses but no position can hold."""
    if not value.is_finite():
        raise BadResponse(broker, f"{field}: not a finite number: {value}")
    return value


def optional_finite(value: Decimal | None, broker: str, field: str) -> Decimal | None:
    """``require_finite`` for a field that may be absent."""
    return None if value is None else require_finite(value, broker, field)


def row_arithmetic_error(
    err: ArithmeticError, row: msgspec.Struct, broker: str, where: str
) -> BadResponse:
    """The BadResponse for a row whose numbers broke the arithmetic (NaN, Infinity, overflow).

    Only runs on the failure path, so it can afford to look for the field to blame.
    """
    for field in row.__struct_fields__:
        value = getattr(row, field)
        if isinstance(value, Decimal) and not value.is_finite():
            name = row.__struct_encode_fields__[row.__struct_fields__.index(field)]
            return BadResponse(broker, f"{where}.{name}: not a finite number: {value}")
    return BadResponse(broker, f"{where}: number out of range ({type(err).__name__})")
