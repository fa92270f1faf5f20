"""Decoding helpers shared by the broker parsers: typed JSON in, BadResponse out."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Mapping
from decimal import Clamped, Context, Decimal, Inexact, InvalidOperation, Overflow, Rounded
from typing import TypeVar

import msgspec

from monitor.brokers.errors import BadResponse

T = TypeVar("T")

_MSGSPEC_PATH = re.compile(r"^(?P<reason>.*?)(?: - at `\$\.?(?P<path>[^`]*)`)?$")
_MAX_ECHO = 40


def decode_json(body: bytes, into: type[T], broker: str) -> T:
    """Decode ``body`` straight into typed structs; any mismatch names the JSON path, and a key
    that appears twice in one object is an error, not the last one winning."""
    with _decoding(broker):
        value = msgspec.json.decode(body, type=into)
    reject_duplicate_keys(body, broker)
    return value


def decode_json_envelope(body: bytes, into: type[T], broker: str) -> T:
    """``decode_json`` that checks only the top-level keys for duplicates: for a body whose
    nested objects the caller checks itself (one row at a time)."""
    with _decoding(broker):
        value = msgspec.json.decode(body, type=into)
        top = _TOP_LEVEL.decode(body)
    reject_duplicate_top_level_keys(body, top, broker)
    return value


@contextlib.contextmanager
def _decoding(broker: str) -> Iterator[None]:
    """Turns msgspec's errors, and a body nested past the interpreter's depth, into BadResponse."""
    try:
        yield
    except msgspec.ValidationError as err:
        raise validation_error(err, broker) from err
    except msgspec.DecodeError as err:
        raise BadResponse(broker, f"body: not valid JSON ({err})") from err
    except RecursionError as err:
        raise BadResponse(broker, "body: nested too deeply") from err


_TOP_LEVEL = msgspec.json.Decoder(dict[str, msgspec.Raw])


class DuplicateKey(Exception):
    """A JSON object holds one key twice; raised by ``unique_object``."""


def unique_object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """``object_pairs_hook`` for ``json.loads``: the object as a dict, or DuplicateKey."""
    document = dict(pairs)
    if len(document) != len(pairs):
        raise DuplicateKey
    return document


def _unique_keys(pairs: list[tuple[str, object]]) -> None:
    if len(dict(pairs)) != len(pairs):  # the fastest count of distinct keys
        raise DuplicateKey


def reject_duplicate_keys(document: bytes, broker: str, root: str = "") -> None:
    """Raise BadResponse naming the path of the first key that appears twice in one object of
    ``document`` (valid JSON); ``root`` is where ``document`` sits in the body (``data[3]``).

    msgspec keeps the last of two equal keys without a word (and has no option to refuse
    them), so the keys are read again by the json module, whose hook sees every pair.
    Numbers stay text there: only the keys matter.
    """
    try:
        json.loads(
            document, object_pairs_hook=_unique_keys, parse_int=str, parse_float=str,
            parse_constant=str,
        )  # fmt: skip
    except DuplicateKey:
        raise duplicate_key_error(document, broker, root) from None
    except RecursionError as err:
        raise BadResponse(broker, f"{root or 'body'}: nested too deeply") from err
    except ValueError as err:  # UTF-8 that msgspec took and json did not: still not trusted
        raise BadResponse(broker, f"{root or 'body'}: not valid JSON ({err})") from err


class _Pairs(list[tuple[str, object]]):
    """An object's pairs in document order, duplicates kept."""


def duplicate_key_error(document: bytes, broker: str, root: str = "") -> BadResponse:
    """The BadResponse for a document known to hold a duplicate key, naming where it is.

    Only runs on the failure path, so it can afford to read the document again in full.
    """
    try:
        tree = json.loads(document, object_pairs_hook=_Pairs, parse_int=str, parse_float=str)
        found = _first_duplicate(tree, root)
    except RecursionError:
        found = None
    path, key = found or (root, "?")
    return BadResponse(broker, f"{path or 'body'}: duplicate key {echo(key)}")


def _first_duplicate(node: object, path: str) -> tuple[str, str] | None:
    if isinstance(node, _Pairs):
        seen = set()
        for key, _ in node:
            if key in seen:
                return path, key
            seen.add(key)
        items = [(f"{path}.{key}" if path else key, value) for key, value in node]
    elif isinstance(node, list):
        items = [(f"{path}[{index}]", value) for index, value in enumerate(node)]
    else:
        return None
    for where, value in items:
        found = _first_duplicate(value, where)
        if found:
            return found
    return None


_BLANKS = frozenset((b" ", b"\t", b"\n", b"\r"))  # whitespace between JSON tokens


def reject_duplicate_top_level_keys(
    document: bytes, values: Mapping[str, msgspec.Raw], broker: str
) -> None:
    """Raise BadResponse if a key appears twice at the top level of the object ``document``,
    given its decoded ``values`` (msgspec keeps the last value of a repeated key).

    Reads only the keys: each value is stepped over by the length of the one msgspec kept for
    its key. Where that value is not the text found there, the key must have been given a value
    elsewhere too, so it is repeated; nested objects are not looked into.
    """
    seen: set[str] = set()
    at = _skip_blanks(document, 1)  # after "{"; msgspec has checked the syntax
    while document[at : at + 1] == b'"':
        end = _string_end(document, at)
        text = document[at:end]
        key = json.loads(text) if b"\\" in text else text[1:-1].decode()
        if key in seen:
            raise BadResponse(broker, f"body: duplicate key {echo(key)}")
        seen.add(key)
        at = _skip_blanks(document, end) + 1  # the ":"
        at = _skip_blanks(document, at)
        kept = values[key]
        if not document.startswith(kept, at):
            raise BadResponse(broker, f"body: duplicate key {echo(key)}")
        at = _skip_blanks(document, at + len(kept))
        if document[at : at + 1] not in (b",", b"}"):  # the kept value only began like this one
            raise BadResponse(broker, f"body: duplicate key {echo(key)}")
        at = _skip_blanks(document, at + 1)


def _skip_blanks(document: bytes, at: int) -> int:
    while document[at : at + 1] in _BLANKS:
        at += 1
    return at


def _string_end(document: bytes, start: int) -> int:
    """The index just past the JSON string that opens at ``start``."""
    end = start
    while True:
        end = document.index(b'"', end + 1)
        escapes = end - 1
        while document[escapes] == 0x5C:  # a quote after an odd run of backslashes is escaped
            escapes -= 1
        if (end - 1 - escapes) % 2 == 0:
            return end + 1


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


# README "Brokers", number bounds: no account holds 10^12 units of anything or 10^15 of any
# currency, and the arithmetic keeps 28 digits. A figure past these is a broken or hostile
# response; unbounded, "1e999999" took minutes of the event loop to print.
MAX_DIGITS = 28


def bounds(limit: int) -> Context:
    """The bounds of a kind of figure: magnitude below ``10**limit``, at most ``MAX_DIGITS``
    significant digits and decimal places. ``plus`` under it raises past any of them, and on a
    zero written with a huge exponent ("0E-999999")."""
    # Etiny, the smallest exponent kept, is Emin - prec + 1: -MAX_DIGITS decimal places.
    return Context(
        prec=MAX_DIGITS, Emax=limit - 1, Emin=-1, traps=[Inexact, Rounded, Overflow, Clamped]
    )


QUANTITY = bounds(12)
MONEY = bounds(15)  # prices, amounts, P&L and the factors that scale them


def within(value: Decimal, bound: Context) -> bool:
    """Whether ``value`` is finite and within ``bound`` (QUANTITY or MONEY)."""
    try:
        bound.plus(value)  # one C call checks magnitude and digits; the copy is dropped
    except ArithmeticError:
        return False
    return value.is_finite()


def bounded(value: Decimal, bound: Context, broker: str, field: str) -> Decimal:
    """``value`` if finite and within ``bound``, else a BadResponse naming ``field``."""
    try:
        bound.plus(value)  # ``within``, inline: this runs for nearly every figure of a body
    except ArithmeticError:
        pass
    else:
        if value.is_finite():
            return value
    raise BadResponse(broker, f"{field}: {unbounded_reason(value, bound)}")


def bounded_result(value: Decimal, bound: Context, broker: str, field: str) -> Decimal:
    """``bounded`` for a figure computed from bounded ones (a sum, a product): the arithmetic
    keeps at most 28 digits, so only its magnitude needs checking. A product or a quotient may
    carry more decimal places than any figure read; that is an exact result, not an error."""
    if value.adjusted() <= bound.Emax:
        return value
    raise BadResponse(broker, f"{field}: {unbounded_reason(value, bound)}")


def optional_bounded(
    value: Decimal | None, bound: Context, broker: str, field: str
) -> Decimal | None:
    """``bounded`` for a field that may be absent."""
    return None if value is None else bounded(value, bound, broker, field)


def unbounded_reason(value: Decimal, bound: Context) -> str:
    """Why ``value`` is outside ``bound``; only runs on the failure path."""
    if not value.is_finite():
        return f"not a finite number: {value}"
    if value.adjusted() > bound.Emax:
        return f"out of range: {echo(str(value))} is not below 10^{bound.Emax + 1} in magnitude"
    if not value:
        return f"out of range: {echo(str(value))}: a zero with an exponent beyond the bounds"
    return f"too precise: {echo(str(value))} has more than {MAX_DIGITS} digits or decimal places"


def grouped_bounded(
    raw: str | int | float, bound: Context, broker: str, field: str
) -> Decimal | None:
    """Parse numbers such as "1,550.00" or "1,55,000" within ``bound``; "--" and "" mean
    empty (None)."""
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
    return bounded(value, bound, broker, field)


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
