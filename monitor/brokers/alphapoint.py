"""AlphaPoint: ``{base}/AP/GetAccountPositions {AccountId, OMSId}`` (seed:
alphapoint-getaccountpositions.md).

The response is a bare JSON array of balances, one per product; the trading day runs from UTC
midnight to UTC midnight. Field names are matched case-insensitively (the gateway answers
``omsId`` to a request that said ``OMSId``). Amounts are decimals (0.5 BTC).

    net_qty = amount
    mtm     = amount * price of productSymbol (from ``quotes``); unknown without a price,
              except a zero amount, which is worth zero.

Errors come as an object: ``{"result": false, "errormsg": ..., "errorcode": 20}``; code 20 means
"not authorized".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from monitor.brokers._decode import echo, require_finite
from monitor.brokers.errors import AuthExpired, BadResponse
from monitor.model import ZERO, Position, PositionKey, Snapshot

BROKER = "alphapoint"
TIMEZONE = "UTC"

NOT_AUTHORIZED = 20


def parse(
    body: bytes, *, account: str, taken_at: datetime, quotes: Mapping[str, Decimal]
) -> Snapshot:
    """Turn a GetAccountPositions body into a Snapshot, or raise a typed BrokerError."""
    try:
        document = json.loads(body, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as err:
        raise BadResponse(BROKER, f"body: not valid JSON ({err})") from err
    except RecursionError as err:
        raise BadResponse(BROKER, "body: nested too deeply") from err
    if isinstance(document, dict):
        _raise_error_envelope(document)
    if not isinstance(document, list):
        kind = type(document).__name__
        raise BadResponse(BROKER, f"body: expected an array of positions, got {kind}")

    positions: dict[PositionKey, Position] = {}
    for index, item in enumerate(document):
        where = f"[{index}]"
        if not isinstance(item, dict):
            raise BadResponse(BROKER, f"{where}: expected an object, got {type(item).__name__}")
        row = {name.lower(): value for name, value in item.items()}
        if len(row) != len(item):
            raise BadResponse(BROKER, f"{where}: a field appears twice, spelled in different cases")
        oms_id = _integer(row, "omsId", where)
        product_id = _integer(row, "productId", where)
        symbol = row.get("productsymbol")
        if not isinstance(symbol, str) or not symbol:
            raise BadResponse(BROKER, f"{where}.productSymbol: expected a non-empty string")
        amount = _amount(row, where)
        key = PositionKey(account, str(oms_id), str(product_id), "")
        if key in positions:
            raise BadResponse(BROKER, f"{where}: duplicate position {oms_id}|{product_id}")
        price = quotes.get(symbol)
        if not amount:
            mtm: Decimal | None = ZERO
        elif price is None:
            mtm = None
        else:
            try:
                mtm = require_finite(amount * price, BROKER, f"{where}.amount")
            except ArithmeticError as err:
                raise BadResponse(BROKER, f"{where}.amount: number out of range") from err
        positions[key] = Position(
            key=key,
            symbol=symbol,
            net_qty=amount,
            avg_price=None,
            ltp=price,
            realized=None,
            unrealized=None,
            mtm=mtm,
        )
    return Snapshot(account=account, broker=BROKER, taken_at=taken_at, positions=positions)


def _raise_error_envelope(document: dict[str, object]) -> None:
    fields = {name.lower(): value for name, value in document.items()}
    if fields.get("result") is False:
        code = fields.get("errorcode")
        reason = f"result false, errorcode {code}: {fields.get('errormsg') or ''}".rstrip(": ")
        if str(code) == str(NOT_AUTHORIZED):  # sent as a number or a string
            raise AuthExpired(BROKER, reason)
        raise BadResponse(BROKER, reason)


def _integer(row: Mapping[str, object], field: str, where: str) -> int:
    value = row.get(field.lower())
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadResponse(BROKER, f"{where}.{field}: expected an integer, got {echo(value)}")
    return value


def _amount(row: Mapping[str, object], where: str) -> Decimal:
    value = row.get("amount")
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise BadResponse(BROKER, f"{where}.amount: expected a number, got {echo(value)}")
    return require_finite(Decimal(value), BROKER, f"{where}.amount")
