"""AlphaPoint: ``{base}/AP/GetAccountPositions {AccountId, OMSId}`` (its published
GetAccountPositions document).

The response is a bare JSON array of balances, one per product; the trading day runs from UTC
midnight to UTC midnight. Field names are matched case-insensitively (the gateway answers
``omsId`` to a request that said ``OMSId``). Amounts are decimals (0.5 BTC).

    net_qty = amount
    mtm     = (amount - totalDayDeposits + totalDayWithdraws) * price of productSymbol (from
              ``quotes``); an absent total counts as 0. Unknown without a price, except when
              that quantity is zero, which is worth zero.

A balance is a wallet, not a position: it also moves when funds are deposited or withdrawn. The
MTM values the balance net of the day's deposits and withdrawals, so moving funds in or out is
neither a profit nor a loss, and never fires a drawdown (README, "Brokers").

Errors come as an object: ``{"result": false, "errormsg": ..., "errorcode": 20}``; code 20 means
"not authorized".

The live client logs in through the HTTP gateway (``{base}/AP/<Function>``) with an HMAC-signed
``AuthenticateUser`` and prices each open balance with ``GetLevel1`` of the instrument that trades
it against the account's quote currency (see ``Client``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from monitor.brokers._decode import (
    MONEY,
    QUANTITY,
    DuplicateKey,
    bounded,
    bounded_result,
    duplicate_key_error,
    echo,
    unique_object,
)
from monitor.brokers.errors import AuthExpired, BadResponse, BrokerUnavailable, RateLimited
from monitor.brokers.options import Option, integer, non_empty_string
from monitor.brokers.session import SessionClient
from monitor.brokers.transport import Connection, HttpResponse, RateLimiter, require_success
from monitor.model import ZERO, Position, PositionKey, Snapshot

BROKER = "alphapoint"
TIMEZONE = "UTC"

NOT_AUTHORIZED = 20
ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class Balance:
    """One row of GetAccountPositions, validated."""

    oms_id: int
    product_id: int
    symbol: str
    amount: Decimal
    day_deposits: Decimal = ZERO
    day_withdraws: Decimal = ZERO

    @property
    def net_of_flows(self) -> Decimal:
        """The amount less what the day's deposits added and withdrawals took away: the part
        of the balance whose value is the day's profit or loss."""
        return self.amount - self.day_deposits + self.day_withdraws


def parse(
    body: bytes, *, account: str, taken_at: datetime, quotes: Mapping[str, Decimal]
) -> Snapshot:
    """Turn a GetAccountPositions body into a Snapshot, or raise a typed BrokerError."""
    return build(decode(body), account=account, taken_at=taken_at, quotes=quotes)


def decode(body: bytes) -> list[Balance]:
    """The balances of a GetAccountPositions body; an error object raises its typed error."""
    document = _load(body, "body")
    if isinstance(document, dict):
        _raise_error_envelope(document)
    if not isinstance(document, list):
        kind = type(document).__name__
        raise BadResponse(BROKER, f"body: expected an array of positions, got {kind}")

    balances: list[Balance] = []
    seen: set[tuple[int, int]] = set()
    for index, item in enumerate(document):
        where = f"[{index}]"
        if not isinstance(item, dict):
            raise BadResponse(BROKER, f"{where}: expected an object, got {type(item).__name__}")
        row = _lower(item, where)
        oms_id = _integer(row, "omsId", where)
        product_id = _integer(row, "productId", where)
        symbol = row.get("productsymbol")
        if not isinstance(symbol, str) or not symbol:
            raise BadResponse(BROKER, f"{where}.productSymbol: expected a non-empty string")
        amount = _amount(row, "amount", where)
        deposits = _amount(row, "totalDayDeposits", where, absent=ZERO)
        withdraws = _amount(row, "totalDayWithdraws", where, absent=ZERO)
        if (oms_id, product_id) in seen:
            raise BadResponse(BROKER, f"{where}: duplicate position {oms_id}|{product_id}")
        seen.add((oms_id, product_id))
        balances.append(Balance(oms_id, product_id, symbol, amount, deposits, withdraws))
    return balances


def open_symbols(balances: Iterable[Balance]) -> list[str]:
    """productSymbol of every balance whose amount net of the day's flows is not zero: the ones
    that need a price."""
    return list(dict.fromkeys(balance.symbol for balance in balances if balance.net_of_flows))


def build(
    balances: Iterable[Balance],
    *,
    account: str,
    taken_at: datetime,
    quotes: Mapping[str, Decimal],
) -> Snapshot:
    """The snapshot of decoded balances priced with ``quotes`` (keyed by productSymbol)."""
    positions: dict[PositionKey, Position] = {}
    for index, balance in enumerate(balances):
        key = PositionKey(account, str(balance.oms_id), str(balance.product_id), "")
        price = quotes.get(balance.symbol)
        held = balance.net_of_flows
        if not held:
            mtm: Decimal | None = ZERO
        elif price is None:
            mtm = None
        else:
            mtm = bounded_result(
                held * price,
                MONEY,
                BROKER,
                f"[{index}]: net amount * price",
            )
        positions[key] = Position(
            key=key,
            symbol=balance.symbol,
            net_qty=balance.amount,
            avg_price=None,
            ltp=price,
            realized=None,
            unrealized=None,
            mtm=mtm,
        )
    return Snapshot(account=account, broker=BROKER, taken_at=taken_at, positions=positions)


def instrument_ids(body: bytes, quote_currency: str) -> dict[str, int]:
    """GetInstruments -> InstrumentId by Product1Symbol (upper case), for pairs quoted in
    ``quote_currency``; the first instrument listed for a pair wins."""
    document = _load(body, "GetInstruments")
    if isinstance(document, dict):
        _raise_error_envelope(document, "GetInstruments: ")
    if not isinstance(document, list):
        kind = type(document).__name__
        raise BadResponse(BROKER, f"GetInstruments: expected an array of instruments, got {kind}")
    wanted = quote_currency.upper()
    ids: dict[str, int] = {}
    for index, item in enumerate(document):
        where = f"GetInstruments[{index}]"
        if not isinstance(item, dict):
            raise BadResponse(BROKER, f"{where}: expected an object, got {type(item).__name__}")
        row = _lower(item, where)
        base, quote = row.get("product1symbol"), row.get("product2symbol")
        if not (isinstance(base, str) and isinstance(quote, str)) or quote.upper() != wanted:
            continue
        ids.setdefault(base.upper(), _integer(row, "InstrumentId", where))
    return ids


def last_price(body: bytes, instrument_id: int) -> Decimal | None:
    """LastTradedPx of a GetLevel1 body; None while the instrument has never traded (0)."""
    document = _load(body, "GetLevel1")
    if not isinstance(document, dict):
        kind = type(document).__name__
        raise BadResponse(BROKER, f"GetLevel1: expected an object, got {kind}")
    _raise_error_envelope(document, "GetLevel1: ")
    row = _lower(document, "GetLevel1")
    answered = row.get("instrumentid", instrument_id)
    if answered != instrument_id:
        raise BadResponse(
            BROKER, f"GetLevel1.InstrumentId: asked for {instrument_id}, got {echo(answered)}"
        )
    value = row.get("lasttradedpx")
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise BadResponse(BROKER, f"GetLevel1.LastTradedPx: expected a number, got {echo(value)}")
    price = bounded(Decimal(value), MONEY, BROKER, "GetLevel1.LastTradedPx")
    return price if price > 0 else None


def _load(body: bytes, where: str) -> object:
    try:
        return json.loads(body, parse_float=Decimal, object_pairs_hook=unique_object)
    except DuplicateKey:
        raise duplicate_key_error(body, BROKER, where) from None
    except (ValueError, UnicodeDecodeError) as err:
        raise BadResponse(BROKER, f"{where}: not valid JSON ({err})") from err
    except RecursionError as err:
        raise BadResponse(BROKER, f"{where}: nested too deeply") from err


def _lower(item: Mapping[str, object], where: str) -> dict[str, object]:
    """Field names in lower case: the gateway spells them differently per call (omsId, OMSId)."""
    row = {name.lower(): value for name, value in item.items()}
    if len(row) != len(item):
        raise BadResponse(BROKER, f"{where}: a field appears twice, spelled in different cases")
    return row


def _raise_error_envelope(document: Mapping[str, object], prefix: str = "") -> None:
    fields = {name.lower(): value for name, value in document.items()}
    if fields.get("result") is False:
        code = fields.get("errorcode")
        message = fields.get("errormsg") or ""
        reason = f"{prefix}result false, errorcode {code}: {message}".rstrip(": ")
        if str(code) == str(NOT_AUTHORIZED):  # sent as a number or a string
            raise AuthExpired(BROKER, reason)
        raise BadResponse(BROKER, reason)


def _integer(row: Mapping[str, object], field: str, where: str) -> int:
    value = row.get(field.lower())
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadResponse(BROKER, f"{where}.{field}: expected an integer, got {echo(value)}")
    return value


def _amount(
    row: Mapping[str, object], field: str, where: str, *, absent: Decimal | None = None
) -> Decimal:
    """The bounded number in ``field``; ``absent`` when the field is missing, if given."""
    name = field.lower()
    if absent is not None and name not in row:
        return absent
    value = row.get(name)
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise BadResponse(BROKER, f"{where}.{field}: expected a number, got {echo(value)}")
    return bounded(Decimal(value), QUANTITY, BROKER, f"{where}.{field}")


# -- live client ------------------------------------------------------------------------------

BASE_URL: str | None = None  # every venue runs its own gateway: each account names its base_url
CREDENTIALS = ("api_key", "api_secret", "user_id")
OPTIONS: Mapping[str, Option] = {
    "account_id": integer(),
    "oms_id": integer(default=1),
    "quote_currency": non_empty_string(default="USD"),
}
# No public per-user limit found in AlphaPoint's or its venues' docs: stay well below any
# plausible one (a poll is 2 + one GetLevel1 per open product).
REQUESTS_PER_SECOND = 5
_MAX_REASON = 120


class Client(SessionClient):
    """Logs in with an HMAC-signed API key, then polls balances and prices the open ones.

    Prices: GetInstruments (cached for the session) maps each productSymbol to the instrument
    that trades it against ``quote_currency``; GetLevel1 of that instrument gives LastTradedPx.
    The quote currency itself is worth 1; a product with no such instrument stays unpriced.
    """

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection, RateLimiter(1, 1 / REQUESTS_PER_SECOND))
        options = connection.options
        account_id = options["account_id"]
        oms_id = options.get("oms_id", OPTIONS["oms_id"].default)
        quote = options.get("quote_currency", OPTIONS["quote_currency"].default)
        if not (isinstance(account_id, int) and isinstance(oms_id, int) and isinstance(quote, str)):
            raise TypeError(
                "alphapoint: account_id and oms_id must be integers, quote_currency text"
            )
        self._account_id = account_id
        self._oms_id = oms_id
        self._quote = quote.upper()
        self._token: str | None = None
        self._instruments: dict[str, int] | None = None
        self._nonce = 0

    def _logged_in(self) -> bool:
        return self._token is not None

    async def _login(self) -> None:
        self._token = None
        self._instruments = None  # a new session re-reads the instrument list
        secrets = self._conn.secrets
        api_key, user_id = secrets["api_key"], secrets["user_id"]
        nonce = self._next_nonce()
        signature = hmac.new(
            secrets["api_secret"].encode(), f"{nonce}{user_id}{api_key}".encode(), hashlib.sha256
        ).hexdigest()
        # Both public SDKs that speak the HTTP gateway (notbank-node, ccxt's ndax) send
        # AuthenticateUser as a GET whose only payload is these four headers.
        response = await self._conn.call(
            BROKER, "GET", self._conn.url("/AP/AuthenticateUser"),
            headers={"APIKey": api_key, "Signature": signature, "UserId": user_id, "Nonce": nonce},
            limiter=self._limiter,
        )  # fmt: skip
        if response.status in (401, 403):
            raise AuthExpired(
                BROKER, f"AuthenticateUser: HTTP {response.status}: login refused",
                status=response.status,
            )  # fmt: skip
        document = _load(require_success(BROKER, response), "AuthenticateUser")
        if not isinstance(document, dict):
            kind = type(document).__name__
            raise BadResponse(BROKER, f"AuthenticateUser: expected an object, got {kind}")
        _raise_error_envelope(document, "AuthenticateUser: ")
        fields = _lower(document, "AuthenticateUser")
        if fields.get("authenticated") is not True:
            raise AuthExpired(BROKER, self._refusal(fields))
        token = fields.get("sessiontoken")
        if not isinstance(token, str) or not token:
            if fields.get("requires2fa") is True:
                raise AuthExpired(BROKER, "AuthenticateUser: the user requires 2FA")
            raise BadResponse(BROKER, "AuthenticateUser: SessionToken: missing")
        self._token = token

    def _next_nonce(self) -> str:
        """Milliseconds since the epoch, never repeating within this client."""
        self._nonce = max(self._nonce + 1, time.time_ns() // 1_000_000)
        return str(self._nonce)

    def _refusal(self, fields: Mapping[str, object]) -> str:
        """Why the gateway said Authenticated false, with every credential value blanked out."""
        reason = "AuthenticateUser: Authenticated false"
        if fields.get("locked") is True:
            reason += " (user locked)"
        message = fields.get("errormsg")
        if isinstance(message, str) and message.strip():
            for value in self._conn.secrets.values():
                if value:
                    message = message.replace(value, "***")
            reason += f": {message.strip()[:_MAX_REASON]}"
        return reason

    async def _poll(self) -> Snapshot:
        response = await self._call(
            "GetAccountPositions", {"AccountId": self._account_id, "OMSId": self._oms_id}
        )
        taken_at = self._conn.clock()
        self.last_exchange = self._conn.exchange(response.status, response.body, {})
        balances = decode(require_success(BROKER, response))
        quotes = await self._quotes(open_symbols(balances))
        self.last_exchange = self._conn.exchange(response.status, response.body, quotes)
        return build(balances, account=self._conn.account, taken_at=taken_at, quotes=quotes)

    async def _call(self, function: str, payload: Mapping[str, object]) -> HttpResponse:
        token = self._token
        assert token is not None  # noqa: S101 - type narrowing: fetch logs in first  # nosec B101
        return await self._conn.call(
            BROKER, "POST", self._conn.url(f"/AP/{function}"), headers={"aptoken": token},
            json_body=payload, limiter=self._limiter,
        )  # fmt: skip

    async def _quotes(self, symbols: list[str]) -> dict[str, Decimal]:
        """Prices keyed by productSymbol; a failed price call leaves that price unknown."""
        quotes = {symbol: ONE for symbol in symbols if symbol.upper() == self._quote}
        wanted = [symbol for symbol in symbols if symbol not in quotes]
        if not wanted:
            return quotes
        try:
            instruments = await self._instrument_ids()
            for symbol in wanted:
                instrument_id = instruments.get(symbol.upper())
                if instrument_id is None:
                    continue  # nothing trades it against the quote currency: no price
                try:
                    price = await self._last_price(instrument_id)
                except BadResponse:
                    continue
                if price is not None:
                    quotes[symbol] = price
        except (BrokerUnavailable, BadResponse, RateLimited):
            # Balances stand without (some) prices: their MTM is unknown this poll. A 429 or an
            # outage stops the pricing at once: the calls after it would only fail the same way.
            pass
        return quotes

    async def _instrument_ids(self) -> dict[str, int]:
        if self._instruments is None:
            response = await self._call("GetInstruments", {"OMSId": self._oms_id})
            self._instruments = instrument_ids(require_success(BROKER, response), self._quote)
        return self._instruments

    async def _last_price(self, instrument_id: int) -> Decimal | None:
        response = await self._call(
            "GetLevel1", {"OMSId": self._oms_id, "InstrumentId": instrument_id}
        )
        return last_price(require_success(BROKER, response), instrument_id)
