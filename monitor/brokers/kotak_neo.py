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
from decimal import Decimal, InvalidOperation

import msgspec

from monitor.brokers._decode import decode_json, row_arithmetic_error
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
        ltp = quotes.get(f"{row.ex_seg}:{row.tok}")
        where = f"data[{index}]"
        try:
            net_qty, mtm = _net_and_mtm(row, ltp, where)
        except ArithmeticError as err:
            raise row_arithmetic_error(err, row, BROKER, where) from err
        positions[key] = Position(
            key=key,
            symbol=row.trd_sym,
            net_qty=net_qty,
            avg_price=None,  # not needed by any rule; the row only has totals
            ltp=ltp,
            realized=None,  # the formula yields MTM only; Neo does not split it per row
            unrealized=None,
            mtm=mtm,
        )
    return Snapshot(account=account, broker=BROKER, taken_at=taken_at, positions=positions)


def _net_and_mtm(row: _Row, ltp: Decimal | None, where: str) -> tuple[Decimal, Decimal | None]:
    """The formula of the module docstring; any NaN or Infinity raises ArithmeticError."""
    net_qty = (row.fl_buy_qty + row.cf_buy_qty) - (row.fl_sell_qty + row.cf_sell_qty)
    cash = (row.sell_amt + row.cf_sell_amt) - (row.buy_amt + row.cf_buy_amt)
    if not (net_qty.is_finite() and cash.is_finite()):
        raise InvalidOperation
    if not net_qty:
        return net_qty, cash
    if ltp is None:
        return net_qty, None
    for name, divisor in (("genDen", row.gen_den), ("prcDen", row.prc_den)):
        if not divisor:
            raise BadResponse(BROKER, f"{where}.{name}: zero divisor")
    factor = row.multiplier * (row.gen_num / row.gen_den) * (row.prc_num / row.prc_den)
    mtm = cash + net_qty * ltp * factor
    if not mtm.is_finite():
        raise InvalidOperation
    return net_qty, mtm
