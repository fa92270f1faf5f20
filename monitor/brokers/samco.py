"""Samco: ``GET {base}/position/getPositions?positionType=DAY`` (its published positions document).

Numbers are strings that may carry thousands separators ("1,550.00"); "--" means empty.
Samco reports a short as a positive ``netQuantity`` with ``transactionType: SELL``, so:

    net_qty = -netQuantity if transactionType == "SELL" and netQuantity > 0 else netQuantity
    mtm     = realizedGainAndLoss + unrealizedGainAndLoss

An empty realised figure is zero; an empty unrealised figure on an open position leaves the
MTM unknown. The key is (exchange, tradingSymbol, productCode).

A ``status: Failure`` envelope whose statusMessage is "No Positions Found" (case and surrounding
blanks aside) is read as an empty book; any other Failure is a failed poll. Samco does not
document its empty-book answer: a success envelope with an empty ``positionDetails`` is the
other candidate, and both give an empty snapshot, live and in replay alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import msgspec

from monitor.brokers._decode import (
    MONEY,
    QUANTITY,
    bounded_result,
    decode_json,
    echo,
    grouped_bounded,
)
from monitor.brokers.errors import AuthExpired, BadResponse
from monitor.brokers.options import Option, choice
from monitor.brokers.session import SessionClient
from monitor.brokers.transport import Connection, HttpResponse, RateLimiter, require_success
from monitor.model import ZERO, Position, PositionKey, Snapshot

BROKER = "samco"
TIMEZONE = "Asia/Kolkata"

_Number = str | int | float
# The statusMessage of a Failure envelope that means "nothing to show", not an error.
NO_POSITIONS_MESSAGE = "no positions found"


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
        no_positions = envelope.status_message.strip().lower() == NO_POSITIONS_MESSAGE
        if envelope.status == "Failure" and no_positions:
            return Snapshot(account=account, broker=BROKER, taken_at=taken_at, positions={})
        raise BadResponse(BROKER, f"status {envelope.status}: {envelope.status_message}")
    if envelope.position_details is None:
        raise BadResponse(BROKER, "positionDetails: missing from a status Success response")

    positions: dict[PositionKey, Position] = {}
    for index, row in enumerate(envelope.position_details):
        where = f"positionDetails[{index}]"
        key = PositionKey(account, row.exchange, row.trading_symbol, row.product_code)
        if key in positions:
            raise BadResponse(BROKER, f"{where}: duplicate position {'|'.join(key[1:])}")
        net_qty = grouped_bounded(row.net_quantity, QUANTITY, BROKER, f"{where}.netQuantity")
        if net_qty is None:
            raise BadResponse(BROKER, f"{where}.netQuantity: empty")
        if net_qty > 0 and row.transaction_type.upper() == "SELL":
            net_qty = -net_qty
        realized = grouped_bounded(
            row.realized_gain_and_loss, MONEY, BROKER, f"{where}.realizedGainAndLoss"
        )
        unrealized = grouped_bounded(
            row.unrealized_gain_and_loss, MONEY, BROKER, f"{where}.unrealizedGainAndLoss"
        )
        if unrealized is None and not net_qty:
            unrealized = ZERO
        mtm = None
        if unrealized is not None:
            gain = (realized or ZERO) + unrealized
            mtm = bounded_result(
                gain, MONEY, BROKER, f"{where}: realizedGainAndLoss + unrealizedGainAndLoss"
            )
        positions[key] = Position(
            key=key,
            symbol=row.trading_symbol,
            net_qty=net_qty,
            avg_price=grouped_bounded(row.average_price, MONEY, BROKER, f"{where}.averagePrice"),
            ltp=grouped_bounded(row.last_traded_price, MONEY, BROKER, f"{where}.lastTradedPrice"),
            realized=realized,
            unrealized=unrealized,
            mtm=mtm,
        )
    return Snapshot(account=account, broker=BROKER, taken_at=taken_at, positions=positions)


# -- live client ------------------------------------------------------------------------------

BASE_URL = "https://tradeapi.samco.in"
REQUESTS_PER_SECOND = 5  # no published limit: a conservative pace per account
CREDENTIALS = ("api_key", "api_secret")  # the OAuth app's pair from Samco's web dashboard
OPTIONS: Mapping[str, Option] = {"position_type": choice("DAY", "NET", default="DAY")}
SESSION_ENDS = time(8, 0)  # a session token is valid until 08:00 IST the next day
_IST = ZoneInfo(TIMEZONE)
_JSON = {"Accept": "application/json", "Content-Type": "application/json"}
_ERROR_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,23}")  # e.g. EOAUTH001: safe to repeat in a message


class _Login(msgspec.Struct, rename="camel"):
    status: str = ""
    session_token: str | None = None
    error_code: str | None = None


class Client(SessionClient):
    """Trades the API key and secret for a session token (``POST /session/token``), then polls."""

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection, RateLimiter(1, 1 / REQUESTS_PER_SECOND))
        default = OPTIONS["position_type"].default
        self._position_type = str(connection.options.get("position_type", default))
        self._token: str | None = None
        self._expires: datetime | None = None
        self._fresh = False  # the token was issued for the attempt about to run
        self._failure_survives_login = False  # a fresh token got the same Failure: not a session

    def _logged_in(self) -> bool:
        return self._expires is not None and self._conn.clock() < self._expires

    async def _login(self) -> None:
        self._token = self._expires = None
        response = await self._conn.call(
            BROKER, "POST", self._conn.url("/session/token"), headers=_JSON,
            json_body={"apiKey": self._conn.secrets["api_key"],
                       "apiSecret": self._conn.secrets["api_secret"]},
            limiter=self._limiter,
        )  # fmt: skip
        if response.status in (400, 401, 403):
            # Wrong or revoked keys: retrying cannot help. Only a code-like errorCode is repeated.
            raise AuthExpired(
                BROKER, f"session/token: HTTP {response.status}: login refused{_code(response)}",
                status=response.status,
            )  # fmt: skip
        login = decode_json(require_success(BROKER, response), _Login, BROKER)
        if login.status != "Success" or not login.session_token:
            status = echo(login.status) if login.status else "missing"
            raise AuthExpired(
                BROKER, f"session/token: status {status}: login refused{_code(response)}",
                status=response.status,
            )  # fmt: skip
        self._token = login.session_token
        self._expires = _session_end(self._conn.clock())
        self._fresh = True

    async def _poll(self) -> Snapshot:
        token = self._token
        assert token is not None  # noqa: S101 - type narrowing: fetch logs in first  # nosec B101
        fresh, self._fresh = self._fresh, False
        response = await self._conn.call(
            BROKER, "GET",
            self._conn.url(f"/position/getPositions?positionType={self._position_type}"),
            headers={"x-session-token": token, **_JSON}, limiter=self._limiter,
        )  # fmt: skip
        taken_at = self._conn.clock()
        self.last_exchange = self._conn.exchange(response.status, response.body, {})
        body = require_success(BROKER, response)
        try:
            snapshot = parse(body, account=self._conn.account, taken_at=taken_at, quotes={})
        except BadResponse as err:
            # Samco may refuse a stale token with HTTP 200 + status Failure: renew once (parse()
            # keeps it a BadResponse for replay). Once a token just issued got the same Failure,
            # it is not about the session, and logging in again every poll would only add load.
            failure = err.reason.startswith("status Failure")
            if failure and fresh:
                self._failure_survives_login = True
            elif failure and not self._failure_survives_login:
                raise AuthExpired(BROKER, err.reason, status=response.status) from err
            raise
        self._failure_survives_login = False
        return snapshot


def _session_end(now: datetime) -> datetime:
    """The next 08:00 in India after ``now``: when a token issued at ``now`` stops working."""
    local = now.astimezone(_IST)
    end = datetime.combine(local.date(), SESSION_ENDS, tzinfo=_IST)
    return end if end > local else end + timedelta(days=1)


def _code(response: HttpResponse) -> str:
    """``, errorCode X`` when a refused login names one in the documented shape, else ""."""
    try:
        code = decode_json(response.body, _Login, BROKER).error_code
    except BadResponse:
        return ""
    return f", errorCode {code}" if code and _ERROR_CODE.fullmatch(code) else ""
