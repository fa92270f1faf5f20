"""Portfolio positions API: ``POST {base}/Portfolio/1.0/portfolio/v1/positions``.

Implemented exactly as its published document describes it (the only public description).
Numbers arrive as decimal strings; ``pnl`` is the broker's own P&L for the row, so ``mtm = pnl`` and
``net_qty = netQty``. The key has no product: (``es``, ``tok``, "").
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

import msgspec

from monitor.brokers._decode import MONEY, QUANTITY, bounded, decode_json, optional_bounded
from monitor.brokers.errors import AuthExpired, BadResponse
from monitor.brokers.options import Option
from monitor.brokers.static_token import StaticTokenClient
from monitor.model import Position, PositionKey, Snapshot

BROKER = "portfolio"
TIMEZONE = "Asia/Kolkata"


class _Row(msgspec.Struct, rename="camel"):
    tok: str
    es: str
    ts: str
    net_qty: Decimal
    pnl: Decimal
    ltp: Decimal | None = None
    avg_price: Decimal | None = None


class _Envelope(msgspec.Struct, rename={"status": "Status", "error_code": "errorCode"}):
    status: str
    message: str = ""
    error_code: str | int = ""
    data: list[_Row] | None = None


def parse(
    body: bytes, *, account: str, taken_at: datetime, quotes: Mapping[str, Decimal]
) -> Snapshot:
    """Turn a positions response body into a Snapshot, or raise a typed BrokerError."""
    del quotes  # rows carry their own ltp and pnl
    envelope = decode_json(body, _Envelope, BROKER)
    if envelope.status != "Success":
        reason = f"Status {envelope.status}, errorCode {envelope.error_code}: {envelope.message}"
        if str(envelope.error_code) in ("401", "403"):
            raise AuthExpired(BROKER, reason)
        raise BadResponse(BROKER, reason)
    if envelope.data is None:
        raise BadResponse(BROKER, "data: missing from a Status Success response")

    positions: dict[PositionKey, Position] = {}
    for index, row in enumerate(envelope.data):
        key = PositionKey(account, row.es, row.tok, "")
        if key in positions:
            raise BadResponse(BROKER, f"data[{index}]: duplicate position {row.es}|{row.tok}")
        positions[key] = Position(
            key=key,
            symbol=row.ts,
            net_qty=bounded(row.net_qty, QUANTITY, BROKER, f"data[{index}].netQty"),
            avg_price=optional_bounded(row.avg_price, MONEY, BROKER, f"data[{index}].avgPrice"),
            ltp=optional_bounded(row.ltp, MONEY, BROKER, f"data[{index}].ltp"),
            realized=None,
            unrealized=None,
            mtm=bounded(row.pnl, MONEY, BROKER, f"data[{index}].pnl"),
        )
    return Snapshot(account=account, broker=BROKER, taken_at=taken_at, positions=positions)


# -- live client ------------------------------------------------------------------------------

BASE_URL: str | None = None  # no public host: every account names its own base URL
CREDENTIALS = ("token",)
OPTIONS: Mapping[str, Option] = {}
POSITIONS_PATH = "/Portfolio/1.0/portfolio/v1/positions"
_REQUEST = {"Source": "N"}
# The token is static (it comes from the environment), so a rejected one cannot be healed here.
_RENEW = "renew the API token and restart"


class Client(StaticTokenClient):
    """Polls positions with a static API token; rows carry their own ltp and pnl (no quotes)."""

    broker = BROKER
    path = POSITIONS_PATH
    request = _REQUEST
    renew = _RENEW

    def headers(self, token: str) -> Mapping[str, str]:
        """The raw token in ``Authorization``: no "Bearer" scheme."""
        return {"Authorization": token, "Content-Type": "application/json"}

    def parse(self, body: bytes, taken_at: datetime) -> Snapshot:
        """This module's parser."""
        return parse(body, account=self._conn.account, taken_at=taken_at, quotes={})
