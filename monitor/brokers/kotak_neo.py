"""Kotak Neo Trade API: ``GET {baseUrl}/quick/user/positions`` (seed: kotak-neo-positions.md).

Every number arrives as a decimal string. The positions call carries no last price; prices come
from the quotes call and reach the parser as ``quotes`` keyed ``"<exSeg>:<tok>"``.

    net_qty = (flBuyQty + cfBuyQty) - (flSellQty + cfSellQty)
    mtm     = (sellAmt + cfSellAmt) - (buyAmt + cfBuyAmt)
              + net_qty * ltp * multiplier * (genNum / genDen) * (prcNum / prcDen)

A flat position (net_qty 0) needs no price: its MTM is the realised cash difference.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, DivisionByZero, InvalidOperation

import msgspec

from monitor.brokers._decode import decode_json, require_finite
from monitor.brokers.errors import AuthExpired, BadResponse
from monitor.model import Position, PositionKey, Snapshot

BROKER = "kotak_neo"
TIMEZONE = "Asia/Kolkata"

# stCode values the Neo API returns (even with HTTP 200) when the session is no longer valid.
SESSION_EXPIRED_CODES = frozenset({"1003", "100022"})


class _Row(msgspec.Struct, rename="camel"):
    ex_seg: str
    tok: str
    prod: str
    trd_sym: str
    fl_buy_qty: Decimal
    fl_sell_qty: Decimal
    cf_buy_qty: Decimal
    cf_sell_qty: Decimal
    buy_amt: Decimal
    sell_amt: Decimal
    cf_buy_amt: Decimal
    cf_sell_amt: Decimal
    multiplier: Decimal
    gen_num: Decimal
    gen_den: Decimal
    prc_num: Decimal
    prc_den: Decimal


class _Envelope(msgspec.Struct, rename="camel"):
    stat: str
    st_code: int | str | None = None
    err_msg: str | None = None
    emsg: str | None = None
    data: list[_Row] | None = None


def parse(
    body: bytes, *, account: str, taken_at: datetime, quotes: Mapping[str, Decimal]
) -> Snapshot:
    """Turn a positions response body into a Snapshot, or raise a typed BrokerError."""
    envelope = decode_json(body, _Envelope, BROKER)
    if envelope.stat != "Ok":
        code = str(envelope.st_code)
        message = envelope.err_msg or envelope.emsg or ""
        reason = f"stat {envelope.stat}, stCode {code}: {message}".rstrip(": ")
        if code in SESSION_EXPIRED_CODES:
            raise AuthExpired(BROKER, reason)
        raise BadResponse(BROKER, reason)
    if envelope.data is None:
        raise BadResponse(BROKER, "data: missing from a stat Ok response")

    positions: dict[PositionKey, Position] = {}
    for index, row in enumerate(envelope.data):
        key = PositionKey(account, row.ex_seg, row.tok, row.prod)
        if key in positions:
            raise BadResponse(BROKER, f"data[{index}]: duplicate position {'|'.join(key[1:])}")
        net_qty = (row.fl_buy_qty + row.cf_buy_qty) - (row.fl_sell_qty + row.cf_sell_qty)
        cash = (row.sell_amt + row.cf_sell_amt) - (row.buy_amt + row.cf_buy_amt)
        ltp = quotes.get(f"{row.ex_seg}:{row.tok}")
        if not net_qty:
            mtm: Decimal | None = cash
        elif ltp is None:
            mtm = None
        else:
            try:
                factor = row.multiplier * (row.gen_num / row.gen_den) * (row.prc_num / row.prc_den)
            except (DivisionByZero, InvalidOperation) as err:
                raise BadResponse(BROKER, f"data[{index}]: genDen/prcDen: zero divisor") from err
            mtm = require_finite(cash + net_qty * ltp * factor, BROKER, f"data[{index}]: mtm")
        positions[key] = Position(
            key=key,
            symbol=row.trd_sym,
            net_qty=require_finite(net_qty, BROKER, f"data[{index}]: net quantity"),
            avg_price=None,  # not needed by any rule; the row only has totals
            ltp=ltp,
            realized=None,  # the formula yields MTM only; Neo does not split it per row
            unrealized=None,
            mtm=mtm,
        )
    return Snapshot(account=account, broker=BROKER, taken_at=taken_at, positions=positions)
