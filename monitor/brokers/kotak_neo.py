"""Kotak Neo Trade API v2: ``GET {baseUrl}/quick/user/positions``, as its positions document has it.

Every number arrives as a decimal string. The positions call carries no last price; prices come
from the quotes call and reach the parser as ``quotes`` keyed ``"<exSeg>:<tok>"``.

    net_qty = (flBuyQty + cfBuyQty) - (flSellQty + cfSellQty)
    mtm     = (sellAmt + cfSellAmt) - (buyAmt + cfBuyAmt)
              + net_qty * ltp * multiplier * (genNum / genDen) * (prcNum / prcDen)

A flat position (net_qty 0) needs no price: its MTM is the realised cash difference.

The longest broker module, and kept whole: its parts (a two-step TOTP + MPIN login, a positions
call, a batched quotes call under one rate limit, and the decode cache of an unchanged body)
are one client's, and each is short.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Context, Decimal, DivisionByZero, DivisionUndefined, InvalidOperation

import msgspec
from yarl import URL

from monitor.brokers import totp
from monitor.brokers._decode import (
    MONEY,
    QUANTITY,
    bounded_result,
    decode_json,
    decode_json_envelope,
    grouped_bounded,
    reject_duplicate_keys,
    row_arithmetic_error,
    unbounded_reason,
    validation_error,
    within,
)
from monitor.brokers.errors import (
    AuthExpired,
    BadResponse,
    BrokerUnavailable,
    RateLimited,
)
from monitor.brokers.options import Option
from monitor.brokers.session import SessionClient
from monitor.brokers.transport import Connection, RateLimiter, require_success
from monitor.model import Position, PositionKey, Snapshot

BROKER = "kotak_neo"
TIMEZONE = "Asia/Kolkata"

# stCode values the Neo API returns (even with HTTP 200) when the session is no longer valid.
SESSION_EXPIRED_CODES = frozenset({"1003", "100022"})
# The official SDK treats {"stat": "Not_Ok", "stCode": 5203, "errMsg": "No Data"} as an account
# with no positions; only that whole message counts (case and surrounding blanks aside), so
# "Upstream returned no data, please retry" and every other 5203 failure stay failed polls.
NO_DATA_CODE = "5203"
NO_DATA_MESSAGE = "no data"


class Row(msgspec.Struct, rename="camel", gc=False):
    """One positions row: the fields the parser reads, typed (the benchmarks' floor too)."""

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
    desc: str | None = None
    # Decoded one row at a time by ``decode``, each reduced to what pricing needs while it is
    # fresh: a large body never holds every row's thirteen decimals at once.
    data: list[msgspec.Raw] | None = None


_ROW = msgspec.json.Decoder(Row)


class _Unpriced(msgspec.Struct, frozen=True, gc=False):
    """A row with everything but its price: the net quantity, the cash difference and the
    price factor ``multiplier * (genNum / genDen) * (prcNum / prcDen)`` (None when flat)."""

    key: PositionKey
    symbol: str
    net_qty: Decimal
    cash: Decimal
    factor: Decimal | None
    unpriceable: str | None = None  # why an open row cannot take a price (a zero divisor...)


def parse(
    body: bytes, *, account: str, taken_at: datetime, quotes: Mapping[str, Decimal]
) -> Snapshot:
    """Turn a positions response body into a Snapshot, or raise a typed BrokerError."""
    return build(decode(body, account), account=account, taken_at=taken_at, quotes=quotes)


def decode(body: bytes, account: str) -> list[_Unpriced]:
    """The rows of a positions body before pricing; error envelopes raise their typed error."""
    return decode_rows(body, account, {})[0]


def decode_rows(
    body: bytes, account: str, known: Mapping[bytes, _Unpriced]
) -> tuple[list[_Unpriced], dict[bytes, _Unpriced]]:
    """``decode``, reusing the rows in ``known`` (raw rows of this account already checked and
    decoded): between trades a body repeats the last one's rows byte for byte, and a row carries
    no price. Also returns this body's rows by their raw bytes, for the next body."""
    envelope = decode_json_envelope(body, _Envelope, BROKER)
    if envelope.stat.lower() != "ok":  # the positions document says "Ok", newer SDK docs "ok"
        code = str(envelope.st_code)
        message = envelope.err_msg or envelope.emsg or ""
        if code == NO_DATA_CODE and message.strip().lower() == NO_DATA_MESSAGE:
            return [], {}  # the API's answer for an account with no positions today
        reason = f"stat {envelope.stat}, stCode {code}: {message}".rstrip(": ")
        if code in SESSION_EXPIRED_CODES:
            raise AuthExpired(BROKER, reason)
        raise BadResponse(BROKER, reason)
    if envelope.data is None:
        raise BadResponse(BROKER, "data: missing from a stat Ok response")
    texts = list(map(bytes, envelope.data))
    _reject_duplicate_keys(texts, known)
    rows = []
    decoded: dict[bytes, _Unpriced] = {}
    for index, text in enumerate(texts):
        unpriced = known.get(text)
        if unpriced is None:
            unpriced = _decode_row(text, account, index)
        decoded[text] = unpriced
        rows.append(unpriced)
    return rows, decoded


def _decode_row(text: bytes, account: str, index: int) -> _Unpriced:
    """One raw row, checked for bounds and priced but for its price."""
    try:
        row = _ROW.decode(text)
    except msgspec.ValidationError as err:
        raise validation_error(err, BROKER, f"data[{index}]") from err
    try:
        return _unpriced(PositionKey(account, row.ex_seg, row.tok, row.prod), row, index)
    except ArithmeticError as err:
        raise row_arithmetic_error(err, row, BROKER, f"data[{index}]") from err


def _reject_duplicate_keys(rows: list[bytes], known: Mapping[bytes, _Unpriced]) -> None:
    """Raise BadResponse naming the first row holding a key twice; rows in ``known`` were
    checked before. The rest are read in one go, which costs far less than one call per row."""
    fresh = [(index, row) for index, row in enumerate(rows) if row not in known]
    if not fresh:
        return
    try:
        reject_duplicate_keys(b"[" + b",".join(row for _, row in fresh) + b"]", BROKER)
    except BadResponse:
        for index, row in fresh:  # the failure path: find the row to name
            reject_duplicate_keys(row, BROKER, f"data[{index}]")
        raise


_QUANTITY_FIELDS = ("fl_buy_qty", "fl_sell_qty", "cf_buy_qty", "cf_sell_qty")


def _unpriced(key: PositionKey, row: Row, index: int) -> _Unpriced:
    """The price-free part of the formula; NaN or Infinity raise ArithmeticError."""
    # Every figure within its bound, even those that cancel out. Their magnitudes are checked
    # here; the sums below, checked in full, catch figures with too many decimal places.
    if (
        max(
            row.fl_buy_qty.adjusted(), row.fl_sell_qty.adjusted(),
            row.cf_buy_qty.adjusted(), row.cf_sell_qty.adjusted(),
        ) > QUANTITY.Emax
        or max(
            row.buy_amt.adjusted(), row.sell_amt.adjusted(),
            row.cf_buy_amt.adjusted(), row.cf_sell_amt.adjusted(),
            row.multiplier.adjusted(), row.gen_num.adjusted(), row.gen_den.adjusted(),
            row.prc_num.adjusted(), row.prc_den.adjusted(),
        ) > MONEY.Emax
    ):  # fmt: skip
        raise _out_of_range(row, index)
    net_qty = (row.fl_buy_qty + row.cf_buy_qty) - (row.fl_sell_qty + row.cf_sell_qty)
    cash = (row.sell_amt + row.cf_sell_amt) - (row.buy_amt + row.cf_buy_amt)
    if not (net_qty.is_finite() and cash.is_finite()):
        raise InvalidOperation
    if not within(net_qty, QUANTITY):
        raise _sum_out_of_range(index, "net quantity", net_qty, QUANTITY)
    if not within(cash, MONEY):
        raise _sum_out_of_range(index, "sell amounts - buy amounts", cash, MONEY)
    if not net_qty:
        return _Unpriced(key, row.trd_sym, net_qty, cash, None)  # flat: MTM is the cash
    try:
        factor = row.multiplier * (row.gen_num / row.gen_den) * (row.prc_num / row.prc_den)
        if not factor.is_finite():
            raise InvalidOperation
    except ArithmeticError as err:
        # Only a price makes this an error: without one the row stands with an unknown MTM.
        return _Unpriced(key, row.trd_sym, net_qty, cash, None, _factor_error(err, row, index))
    if factor.adjusted() > MONEY.Emax:  # tiny divisors; bounded, no product can overflow
        reason = f"data[{index}]: price factor: {unbounded_reason(factor, MONEY)}"
        return _Unpriced(key, row.trd_sym, net_qty, cash, None, reason)
    return _Unpriced(key, row.trd_sym, net_qty, cash, factor)


def _out_of_range(row: Row, index: int) -> BadResponse:
    """The BadResponse naming the first figure of ``row`` past its bound (failure path only)."""
    for field in row.__struct_fields__[4:]:  # after the key and symbol strings
        value = getattr(row, field)
        bound = QUANTITY if field in _QUANTITY_FIELDS else MONEY
        if value.adjusted() > bound.Emax:
            name = row.__struct_encode_fields__[row.__struct_fields__.index(field)]
            return BadResponse(BROKER, f"data[{index}].{name}: {unbounded_reason(value, bound)}")
    return BadResponse(BROKER, f"data[{index}]: number out of range")


def _sum_out_of_range(index: int, what: str, value: Decimal, bound: Context) -> BadResponse:
    return BadResponse(BROKER, f"data[{index}]: {what}: {unbounded_reason(value, bound)}")


def _factor_error(err: ArithmeticError, row: Row, index: int) -> str:
    """Why the price factor of a row cannot be computed: a zero divisor or a broken number."""
    where = f"data[{index}]"
    if isinstance(err, DivisionByZero | DivisionUndefined):  # x / 0 and 0 / 0
        return f"{where}.{'genDen' if not row.gen_den else 'prcDen'}: zero divisor"
    return row_arithmetic_error(err, row, BROKER, where).reason


def open_instruments(rows: list[_Unpriced]) -> list[str]:
    """``exSeg|tok`` of every row with a non-zero net quantity, once each (one token may be held
    under two products): the instruments that need a price."""
    wanted = (f"{r.key.exchange_segment}|{r.key.token}" for r in rows if r.net_qty)
    return list(dict.fromkeys(wanted))


def build(
    rows: list[_Unpriced], *, account: str, taken_at: datetime, quotes: Mapping[str, Decimal]
) -> Snapshot:
    """The snapshot of decoded rows priced with ``quotes`` (keyed ``exSeg:tok``)."""
    return Snapshot(
        account=account, broker=BROKER, taken_at=taken_at, positions=price(rows, quotes)
    )


def price(
    rows: list[_Unpriced],
    quotes: Mapping[str, Decimal],
    last: tuple[list[_Unpriced], Mapping[PositionKey, Position]] | None = None,
) -> dict[PositionKey, Position]:
    """The positions of decoded rows priced with ``quotes`` (keyed ``exSeg:tok``).

    ``last`` is the last poll's rows and the positions priced from them: a row decoded then
    (``decode_rows`` hands back the very row for bytes repeated) with the very same price
    keeps its position, so only rows that traded or ticked are priced again."""
    kept = {}
    if last is not None:  # one position per row, in the rows' order
        kept = {r.key: (r, p) for r, p in zip(last[0], last[1].values(), strict=True)}
    positions: dict[PositionKey, Position] = {}
    for index, row in enumerate(rows):
        key = row.key
        if key in positions:
            raise BadResponse(BROKER, f"data[{index}]: duplicate position {'|'.join(key[1:])}")
        ltp = quotes.get(f"{key.exchange_segment}:{key.token}")
        before = kept.get(key)
        if before is not None and before[0] is row and before[1].ltp is ltp:
            positions[key] = before[1]
            continue
        positions[key] = Position(
            key=key,
            symbol=row.symbol,
            net_qty=row.net_qty,
            avg_price=None,  # not needed by any rule; the row only has totals
            ltp=ltp,
            realized=None,  # the formula yields MTM only; Neo does not split it per row
            unrealized=None,
            mtm=_mtm(row, ltp, index),
        )
    return positions


def _mtm(row: _Unpriced, ltp: Decimal | None, index: int) -> Decimal | None:
    """cash + net_qty * ltp * factor; a flat row needs no price, an open one without is None."""
    if not row.net_qty:
        return row.cash
    if ltp is None:
        return None
    if row.factor is None:
        raise BadResponse(BROKER, row.unpriceable or f"data[{index}]: no price factor")
    # Bounded figures cannot overflow the arithmetic; their product can still exceed the bound.
    return bounded_result(
        row.cash + row.net_qty * ltp * row.factor, MONEY, BROKER, f"data[{index}]: MTM"
    )


# -- live client ------------------------------------------------------------------------------

BASE_URL = "https://mis.kotaksecurities.com"  # login; positions go to the per-user baseUrl
CREDENTIALS = ("access_token", "mobile_number", "ucc", "mpin", "totp_secret")
# Checked when rules.yaml is loaded, so `check` refuses what login would.
CREDENTIAL_CHECKS = {"totp_secret": totp.decode_secret}
OPTIONS: Mapping[str, Option] = {}
REQUESTS_PER_SECOND = 9  # the server allows 10 per user across all APIs: keep a margin
QUOTES_PER_CALL = 100  # instruments per quotes URL, to keep it a sane length
_FIN_KEY = "neotradeapi"


class _Token(msgspec.Struct, rename="camel"):
    token: str
    sid: str
    base_url: str | None = None


class _LoginEnvelope(msgspec.Struct):
    data: _Token


class _Quote(msgspec.Struct):
    exchange: str
    exchange_token: str
    ltp: str


@dataclass(frozen=True, slots=True)
class _Decoded:
    """A positions body's digest, its rows and the instruments they need prices for."""

    digest: bytes
    rows: list[_Unpriced]
    instruments: list[str]
    by_text: dict[bytes, _Unpriced]  # the body's rows by their raw bytes, for the next body


@dataclass(frozen=True, slots=True)
class _Quotes:
    """Last prices keyed ``exSeg:tok``, and the digest of the quotes bodies they were decoded
    from (None when a call failed or was skipped: such prices are never reused)."""

    prices: dict[str, Decimal]
    digest: bytes | None


_NO_QUOTES = _Quotes({}, None)  # a poll while the quotes API asked to be left alone


@dataclass(frozen=True, slots=True)
class _Priced:
    """The last poll's positions, and the decoded body and prices they were priced from."""

    decoded: _Decoded
    quotes: _Quotes
    positions: dict[PositionKey, Position]


@dataclass(frozen=True, slots=True)
class _Session:
    token: str
    sid: str
    base_url: str


class Client(SessionClient):
    """Logs in with TOTP and MPIN, then polls positions and prices their open rows."""

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection, RateLimiter(REQUESTS_PER_SECOND))
        self._secrets = connection.secrets
        try:
            self._totp_key = totp.decode_secret(connection.secrets["totp_secret"])
        except ValueError as err:
            raise ValueError(f"totp_secret: {err}") from None
        self._session: _Session | None = None
        self._quotes_not_before = 0.0  # monotonic time before which quotes are not asked for
        self._decoded: _Decoded | None = None  # of the last positions body
        self._quoted: _Quotes | None = None  # of the last quotes bodies
        self._priced: _Priced | None = None  # the last poll's positions

    def _logged_in(self) -> bool:
        return self._session is not None

    async def _login(self) -> None:
        self._session = None
        access = self._secrets["access_token"]
        view = await self._token(
            "/login/1.0/tradeApiLogin",
            {"Authorization": access, "neo-fin-key": _FIN_KEY},
            {
                "mobileNumber": self._secrets["mobile_number"],
                "ucc": self._secrets["ucc"],
                "totp": totp.code(self._totp_key),
            },
        )
        trade = await self._token(
            "/login/1.0/tradeApiValidate",
            {"Authorization": access, "neo-fin-key": _FIN_KEY, "sid": view.sid, "Auth": view.token},
            {"mpin": self._secrets["mpin"]},
        )
        if not trade.base_url or not trade.base_url.startswith(("https://", "http://")):
            raise BadResponse(BROKER, "tradeApiValidate: data.baseUrl: missing or not a URL")
        self._session = _Session(trade.token, trade.sid, trade.base_url.rstrip("/"))

    async def _token(self, path: str, headers: Mapping[str, str], body: object) -> _Token:
        response = await self._conn.call(
            BROKER, "POST", self._conn.url(path), headers=headers, json_body=body,
            limiter=self._limiter,
        )  # fmt: skip
        step = path.rsplit("/", 1)[-1]
        if response.status in (400, 401, 403):
            # Wrong credentials cannot be fixed by retrying: say which step refused them.
            raise AuthExpired(
                BROKER, f"{step}: HTTP {response.status}: login refused", status=response.status
            )
        body = require_success(BROKER, response)
        try:
            return decode_json(body, _LoginEnvelope, BROKER).data
        except BadResponse as err:
            # The login APIs can answer 200 with an error body instead of ``data``.
            raise AuthExpired(
                BROKER, f"{step}: login refused ({err.reason})", status=response.status
            ) from err

    async def _poll(self) -> Snapshot:
        session = self._session
        assert session is not None  # noqa: S101 - type narrowing: fetch logs in first  # nosec B101
        response = await self._conn.call(
            BROKER, "GET", f"{session.base_url}/quick/user/positions",
            headers={"Auth": session.token, "Sid": session.sid, "neo-fin-key": _FIN_KEY},
            limiter=self._limiter,
        )  # fmt: skip
        taken_at = self._conn.clock()
        self.last_exchange = self._conn.exchange(response.status, response.body, {})
        decoded = self._decode(require_success(BROKER, response))
        quotes = _NO_QUOTES
        if time.monotonic() >= self._quotes_not_before:
            quotes = await self._quotes(session, decoded.instruments)
        self.last_exchange = self._conn.exchange(response.status, response.body, quotes.prices)
        return Snapshot(
            account=self._conn.account, broker=BROKER, taken_at=taken_at,
            positions=self._price(decoded, quotes),
        )  # fmt: skip

    def _price(self, decoded: _Decoded, quotes: _Quotes) -> dict[PositionKey, Position]:
        """The positions of this poll. Between two trades an account's positions and prices
        repeat byte for byte, and then so do its positions: the last poll's are reused, and
        the engine's diff finds them unchanged at a glance."""
        last = self._priced
        if last is not None and last.decoded is decoded and last.quotes is quotes:
            return last.positions
        positions = price(
            decoded.rows,
            quotes.prices,
            None if last is None else (last.decoded.rows, last.positions),
        )
        self._priced = _Priced(decoded, quotes, positions)
        return positions

    def _decode(self, body: bytes) -> _Decoded:
        """A positions body decoded. The body carries no prices, so between two trades every
        poll returns the same bytes: those are decoded once, not every poll."""
        digest = hashlib.blake2b(body, digest_size=16).digest()
        if self._decoded is None or self._decoded.digest != digest:
            # Most rows of a changed body are the last body's rows byte for byte: those were
            # checked for duplicate keys already.
            known = {} if self._decoded is None else self._decoded.by_text
            rows, by_text = decode_rows(body, self._conn.account, known)
            self._decoded = _Decoded(digest, rows, open_instruments(rows), by_text)
        return self._decoded

    async def _quotes(self, session: _Session, instruments: list[str]) -> _Quotes:
        """Last prices keyed ``exSeg:tok``; a failed quote call leaves those prices unknown.
        Bodies identical to the last poll's give the last poll's prices, undecoded."""
        bodies: list[bytes] = []
        complete = True
        for start in range(0, len(instruments), QUOTES_PER_CALL):
            batch = ",".join(instruments[start : start + QUOTES_PER_CALL])
            # ``|`` and ``,`` must reach the server literally, so the URL is sent pre-encoded.
            url = URL(
                f"{session.base_url}/script-details/1.0/quotes/neosymbol/{batch}/ltp", encoded=True
            )
            try:
                response = await self._conn.call(
                    BROKER, "GET", url, headers={"Authorization": self._secrets["access_token"]},
                    limiter=self._limiter,
                )  # fmt: skip
                bodies.append(require_success(BROKER, response))
            except RateLimited as err:
                # Positions still stand; the quotes API is left alone for as long as it asked.
                self._quotes_not_before = time.monotonic() + min(err.retry_after or 60.0, 300.0)
                complete = False
                break
            except BrokerUnavailable:
                complete = False
                break  # the rest would time out the same way; this poll goes without prices
            except (BadResponse, AuthExpired):
                # Positions stand without prices: their MTM is unknown this poll. (Quotes use
                # the access token alone, so logging in again could not help a refusal here.)
                complete = False
        digest = _digest(bodies) if complete else None
        if digest is not None and self._quoted is not None and self._quoted.digest == digest:
            return self._quoted
        prices: dict[str, Decimal] = {}
        for body in bodies:
            try:
                for quote in decode_json(body, list[_Quote], BROKER):
                    price = grouped_bounded(quote.ltp, MONEY, BROKER, "quotes[].ltp")
                    if price is not None:
                        prices[f"{quote.exchange}:{quote.exchange_token}"] = price
            except BadResponse:
                digest = None  # prices before the bad one stand, the rest are unknown
        self._quoted = _Quotes(prices, digest)
        return self._quoted


def _digest(bodies: list[bytes]) -> bytes:
    """One digest of several bodies, each length-prefixed so no two splits collide."""
    hashed = hashlib.blake2b(digest_size=16)
    for body in bodies:
        hashed.update(len(body).to_bytes(8, "big"))
        hashed.update(body)
    return hashed.digest()
