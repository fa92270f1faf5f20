"""Torus: ``POST {base}/api/v1/holdings/netposition`` (its published document).

Numbers are JSON numbers, decoded exactly into Decimal. ``net_qty`` is already signed;
``mtm`` is the unrealised part, so ``mtm = realised_profit + mtm``. The key is
(``exchange + "_" + segment``, ``security_id``, ``product``), e.g. ("BSE_E", "500325", "C").
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

import msgspec

from monitor.brokers._decode import (
    MONEY,
    QUANTITY,
    bounded,
    bounded_result,
    decode_json,
    optional_bounded,
)
from monitor.brokers.errors import BadResponse
from monitor.brokers.options import Option
from monitor.brokers.static_token import StaticTokenClient
from monitor.model import Position, PositionKey, Snapshot

BROKER = "torus"
TIMEZONE = "Asia/Kolkata"


class _Row(msgspec.Struct):
    symbol: str
    exchange: str
    segment: str
    security_id: str | int
    product: str
    net_qty: Decimal
    realised_profit: Decimal
    mtm: Decimal
    last_traded_price: Decimal | None = None
    buy_avg: Decimal | None = None
    sell_avg: Decimal | None = None


class _Envelope(msgspec.Struct):
    status: str
    message: str = ""
    data: list[_Row] | None = None


def parse(
    body: bytes, *, account: str, taken_at: datetime, quotes: Mapping[str, Decimal]
) -> Snapshot:
    """Turn a net-position response body into a Snapshot, or raise a typed BrokerError."""
    del quotes  # rows carry their own prices and P&L
    envelope = decode_json(body, _Envelope, BROKER)
    if envelope.status.lower() != "success":
        raise BadResponse(BROKER, f"status {envelope.status}: {envelope.message}")
    if envelope.data is None:
        raise BadResponse(BROKER, "data: missing from a status success response")

    positions: dict[PositionKey, Position] = {}
    for index, row in enumerate(envelope.data):
        segment = f"{row.exchange}_{row.segment}"
        token = str(row.security_id)
        key = PositionKey(account, segment, token, row.product)
        if key in positions:
            raise BadResponse(BROKER, f"data[{index}]: duplicate position {'|'.join(key[1:])}")
        where = f"data[{index}]"
        net_qty = bounded(row.net_qty, QUANTITY, BROKER, f"{where}.net_qty")
        realized = bounded(row.realised_profit, MONEY, BROKER, f"{where}.realised_profit")
        unrealized = bounded(row.mtm, MONEY, BROKER, f"{where}.mtm")
        avg_price, avg_field = (
            (row.buy_avg, "buy_avg") if net_qty > 0 else (row.sell_avg, "sell_avg")
        )
        positions[key] = Position(
            key=key,
            symbol=row.symbol,
            net_qty=net_qty,
            avg_price=optional_bounded(avg_price, MONEY, BROKER, f"{where}.{avg_field}"),
            ltp=optional_bounded(
                row.last_traded_price, MONEY, BROKER, f"{where}.last_traded_price"
            ),
            realized=realized,
            unrealized=unrealized,
            mtm=bounded_result(
                realized + unrealized, MONEY, BROKER, f"{where}: realised_profit + mtm"
            ),
        )
    return Snapshot(account=account, broker=BROKER, taken_at=taken_at, positions=positions)


# -- live client ------------------------------------------------------------------------------

BASE_URL = "https://connects.torusdigital.com"
CREDENTIALS = ("token",)
OPTIONS: Mapping[str, Option] = {}
NETPOSITION_PATH = "/api/v1/holdings/netposition"
_REQUEST = {"source": "M", "data": {"interop_flag": "IP"}}
# Torus login needs a browser OTP step, so the token comes from the environment and a rejected
# one cannot be renewed here.
_RENEW = "renew the Torus access token (browser login) and restart"


class Client(StaticTokenClient):
    """Polls net positions with a static Bearer token; rows carry their own prices (no quotes)."""

    broker = BROKER
    path = NETPOSITION_PATH
    request = _REQUEST
    renew = _RENEW

    def headers(self, token: str) -> Mapping[str, str]:
        """A Bearer token, and the Accept header the document's curl example sends."""
        return {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }

    def parse(self, body: bytes, taken_at: datetime) -> Snapshot:
        """This module's parser."""
        return parse(body, account=self._conn.account, taken_at=taken_at, quotes={})
