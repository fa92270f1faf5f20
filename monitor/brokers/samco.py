"""Samco: ``GET {base}/position/getPositions?positionType=DAY`` (seed: samco-positions.md).

Numbers are strings that may carry thousands separators ("1,550.00"); "--" means empty.
Samco reports a short as a positive ``netQuantity`` with ``transactionType: SELL``, so:

    net_qty = -netQuantity if transactionType == "SELL" and netQuantity > 0 else netQuantity
    mtm     = realizedGainAndLoss + unrealizedGainAndLoss

An empty realised figure is zero; an empty unrealised figure on an open position leaves the
MTM unknown. The key is (exchange, tradingSymbol, productCode).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

import msgspec

from monitor.brokers._decode import decode_json, grouped_decimal
from monitor.brokers.errors import BadResponse
from monitor.model import ZERO, Position, PositionKey, Snapshot

BROKER = "samco"
TIMEZONE = "Asia/Kolkata"

_Number = str | int | float


class _Row(msgspec.Struct, rename="camel"):
    exchange: str
    trading_symbol: str
    product_code: str
    net_quantity: _Number
    transaction_type: str
    realized_gain_and_loss: _Number = "--"
    unrealized_gain_and_loss: _Number = "--"
    last_traded_price: _Number = "--"
    average_price: _Number = "--"


class _Envelope(msgspec.Struct, rename="camel"):
    status: str
    status_message: str = ""
    position_details: list[_Row] | None = None


def parse(
    body: bytes, *, account: str, taken_at: datetime, quotes: Mapping[str, Decimal]
) -> Snapshot:
    """Turn a positions response body into a Snapshot, or raise a typed BrokerError."""
    del quotes  # rows carry their own prices and P&L
    envelope = decode_json(body, _Envelope, BROKER)
    if envelope.status != "Success":
        raise BadResponse(BROKER, f"status {envelope.status}: {envelope.status_message}")
    if envelope.position_details is None:
        raise BadResponse(BROKER, "positionDetails: missing from a status Success response")

    positions: dict[PositionKey, Position] = {}
    for index, row in enumerate(envelope.position_details):
        where = f"positionDetails[{index}]"
        key = PositionKey(account, row.exchange, row.trading_symbol, row.product_code)
        if key in positions:
            raise BadResponse(BROKER, f"{where}: duplicate position {'|'.join(key[1:])}")
        net_qty = grouped_decimal(row.net_quantity, BROKER, f"{where}.netQuantity")
        if net_qty is None:
            raise BadResponse(BROKER, f"{where}.netQuantity: empty")
        if net_qty > 0 and row.transaction_type.upper() == "SELL":
            net_qty = -net_qty
        realized = grouped_decimal(
            row.realized_gain_and_loss, BROKER, f"{where}.realizedGainAndLoss"
        )
        unrealized = grouped_decimal(
            row.unrealized_gain_and_loss, BROKER, f"{where}.unrealizedGainAndLoss"
        )
        if unrealized is None and not net_qty:
            unrealized = ZERO
        try:
            mtm = None if unrealized is None else (realized or ZERO) + unrealized
        except ArithmeticError as err:
            raise BadResponse(
                BROKER, f"{where}: number out of range ({type(err).__name__})"
            ) from err
        positions[key] = Position(
            key=key,
            symbol=row.trading_symbol,
            net_qty=net_qty,
            avg_price=grouped_decimal(row.average_price, BROKER, f"{where}.averagePrice"),
            ltp=grouped_decimal(row.last_traded_price, BROKER, f"{where}.lastTradedPrice"),
            realized=realized,
            unrealized=unrealized,
            mtm=mtm,
        )
    return Snapshot(account=account, broker=BROKER, taken_at=taken_at, positions=positions)
