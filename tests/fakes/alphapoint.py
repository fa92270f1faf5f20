"""A fake AlphaPoint (APEX) HTTP gateway: ``{base}/AP/<Function>``.

Imitates what the public sources show of a venue's gateway (NDAX, Notbank):
- ``AuthenticateUser`` takes the headers ``APIKey``, ``Signature``, ``UserId`` and ``Nonce``,
  where Signature is the lowercase hex HMAC-SHA256 of ``nonce + userId + apiKey`` keyed with the
  API secret (notbank-node ``core/hmac.js``, ccxt ``ndax.ts``), and answers
  ``{"Authenticated": true, "SessionToken": ..., "User": {...}}`` or ``Authenticated: false``.
  A wrong signature is refused, as the real gateway does.
- Other functions take their payload as a JSON body (POST, as notbank-node sends them) or as
  query parameters (GET, as ccxt sends them), keys in any case (ccxt writes ``omsId``,
  notbank-node ``OMSId``), and need the header ``aptoken: <SessionToken>``, except the public
  market-data calls GetInstruments and GetLevel1.
- Errors are ``{"result": false, "errormsg": ..., "errorcode": ..., "detail": null}``;
  errorcode 20 is "Not Authorized" (notbank-node ``constants/errorCode.js``), 100 an invalid
  request such as an unknown InstrumentId (ccxt ``ndax.ts``).
- GetAccountPositions answers the seed document's bare array (alphapoint-getaccountpositions.md);
  GetInstruments and GetLevel1 answer the shapes shown in ccxt's ndax comments.

Not public, so chosen here: the HTTP status of an error envelope (200, the envelope carries the
error), the wording of a refused login, and that nonces need not increase (notbank-node sends a
random one).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web

from tests.fakes.scripted import Received, Reply, json_or_none, play, record, released_at_shutdown

NOT_AUTHORIZED = {"result": False, "errormsg": "Not Authorized", "errorcode": 20, "detail": None}
PUBLIC = frozenset({"GetInstruments", "GetLevel1"})


def envelope(code: int, message: str) -> bytes:
    """An error object as the gateway sends it."""
    return json.dumps(
        {"result": False, "errormsg": message, "errorcode": code, "detail": None}
    ).encode()


def balance(symbol: str, product_id: int, amount: object, *, oms_id: int = 1) -> dict[str, object]:
    """A GetAccountPositions row in the seed document's shape (camelCase keys)."""
    row: dict[str, object] = {
        "omsId": oms_id, "accountId": 4, "productSymbol": symbol, "productId": product_id,
        "amount": amount, "hold": 0.0, "pendingDeposits": 0.0, "pendingWithdraws": 0.0,
        "totalDayDeposits": 0.0, "totalMonthDeposits": 0.0, "totalYearDeposits": 0.0,
        "totalYearDepositNotional": 0.0, "totalDayWithdraws": 0.0, "totalMonthWithdraws": 0.0,
        "totalYearWithdraws": 0.0, "totalYearWithdrawNotional": 0.0,
    }  # fmt: skip
    return row


def instrument(instrument_id: int, base: str, quote: str, *, oms_id: int = 1) -> dict[str, object]:
    """A GetInstruments entry in ccxt's documented shape (PascalCase keys)."""
    return {
        "OMSId": oms_id, "InstrumentId": instrument_id, "Symbol": f"{base}{quote}",
        "Product1": 0, "Product1Symbol": base, "Product2": 0, "Product2Symbol": quote,
        "InstrumentType": "Standard", "VenueInstrumentId": instrument_id, "VenueId": 1,
        "SortIndex": 0, "SessionStatus": "Running", "PreviousSessionStatus": "Stopped",
        "SessionStatusDateTime": "2020-11-25T19:42:15.245Z", "SelfTradePrevention": True,
        "QuantityIncrement": 1e-08, "PriceIncrement": 1e-08, "MinimumQuantity": 0.01,
        "MinimumPrice": 1e-06, "VenueSymbol": f"{base}{quote}", "IsDisable": False,
    }  # fmt: skip


def level1(instrument_id: int, last: object, *, oms_id: int = 1) -> dict[str, object]:
    """A GetLevel1 answer in ccxt's documented shape; ``last`` is LastTradedPx."""
    return {
        "OMSId": oms_id, "InstrumentId": instrument_id, "BestBid": last, "BestOffer": last,
        "LastTradedPx": last, "LastTradedQty": 0.0001, "LastTradeTime": 1607040406424,
        "SessionOpen": last, "SessionHigh": last, "SessionLow": last, "SessionClose": last,
        "Volume": 0.0001, "CurrentDayVolume": 0.0001, "CurrentDayNotional": 1.906932,
        "CurrentDayNumTrades": 1, "CurrentDayPxChange": 0.0, "Rolling24HrVolume": 0.0,
        "Rolling24HrNotional": 0.0, "Rolling24NumTrades": 0, "Rolling24HrPxChange": 0,
        "TimeStamp": "1607040406425", "BidQty": 0, "AskQty": 0, "BidOrderCt": 0,
        "AskOrderCt": 0, "Rolling24HrPxChangePercent": 0,
    }  # fmt: skip


@dataclass
class GatewayState:
    """What the fake gateway knows, serves and saw."""

    api_key: str
    api_secret: str
    user_id: str
    account_id: int
    oms_id: int = 1
    positions: list[dict[str, object]] = field(default_factory=list)
    instruments: list[dict[str, object]] = field(default_factory=list)
    level1: dict[int, dict[str, object]] = field(default_factory=dict)  # by InstrumentId
    login_refusal: str = "Invalid API key or signature"
    requests: list[Received] = field(default_factory=list)  # endpoint: the function called
    faults: defaultdict[str, deque[Reply]] = field(default_factory=lambda: defaultdict(deque))
    tokens: set[str] = field(default_factory=set)
    issued: list[str] = field(default_factory=list)

    def script(self, function: str, *faults: Reply) -> None:
        """Answer the next calls of ``function`` with ``faults``, in order."""
        self.faults[function].extend(faults)

    def expire_sessions(self) -> None:
        """Forget every session token, as the gateway does when a session times out."""
        self.tokens.clear()

    def calls(self, function: str) -> list[Received]:
        """The recorded requests of one function."""
        return [request for request in self.requests if request.endpoint == function]

    def functions(self) -> list[str]:
        """The functions called, in order."""
        return [request.endpoint for request in self.requests]


def payload(request: Received) -> dict[str, object] | None:
    """A call's parameters, keys as sent: the query of a GET, the JSON object of a POST.

    Query values that are integers count as numbers, as a JSON body would carry them; None
    when a POST body is neither empty nor a JSON object.
    """
    if request.method == "GET":
        return {name: _number(value) for name, value in request.query.items()}
    if not request.body:
        return {}
    document = json_or_none(request.body)
    return document if isinstance(document, dict) else None


def make_app(state: GatewayState) -> web.Application:
    """The gateway's routes over ``state``."""
    app = web.Application()
    released = released_at_shutdown(app)  # slow scripted replies end with the test

    async def handle(request: web.Request) -> web.StreamResponse:
        function = request.match_info["function"]
        parameters = payload(await record(request, state.requests, function))
        if parameters is None:
            return web.Response(status=400, body=envelope(100, "Invalid Request"))
        if (scripted := await play(state.faults[function], released)) is not None:
            return scripted
        handler = _HANDLERS.get(function)
        if handler is None:
            return web.Response(status=404, text="Not Found")
        if function == "AuthenticateUser":
            return handler(state, request.headers, {})
        if function not in PUBLIC and request.headers.get("aptoken") not in state.tokens:
            return web.json_response(NOT_AUTHORIZED)
        lowered = {name.lower(): value for name, value in parameters.items()}
        return handler(state, request.headers, lowered)

    app.router.add_route("GET", "/AP/{function}", handle)
    app.router.add_route("POST", "/AP/{function}", handle)
    return app


def _number(value: str) -> object:
    return int(value) if value.lstrip("-").isdigit() else value


def _authenticate(
    state: GatewayState, headers: Mapping[str, str], _: Mapping[str, object]
) -> web.Response:
    nonce = headers.get("Nonce", "")
    api_key = headers.get("APIKey", "")
    user_id = headers.get("UserId", "")
    expected = hmac.new(
        state.api_secret.encode(), f"{nonce}{user_id}{api_key}".encode(), hashlib.sha256
    ).hexdigest()
    signature = headers.get("Signature", "")
    if not (
        nonce
        and api_key == state.api_key
        and user_id == state.user_id
        and hmac.compare_digest(signature, expected)
    ):
        return web.json_response(
            {"Authenticated": False, "Locked": False, "errormsg": state.login_refusal}
        )
    token = secrets.token_hex(16)
    state.tokens.add(token)
    state.issued.append(token)
    return web.json_response(
        {
            "Authenticated": True,
            "SessionToken": token,
            "User": {
                "UserId": int(state.user_id), "UserName": "trader", "Email": "trader@example.com",
                "EmailVerified": True, "AccountId": state.account_id, "OMSId": state.oms_id,
                "Use2FA": False,
            },
            "Locked": False, "Requires2FA": False, "TwoFAType": None, "TwoFAToken": None,
            "errormsg": None,
        }
    )  # fmt: skip


def _positions(
    state: GatewayState, _: Mapping[str, str], payload: Mapping[str, object]
) -> web.Response:
    if payload.get("omsid") != state.oms_id:
        return web.Response(body=envelope(100, "Invalid OMSId"), content_type="application/json")
    if payload.get("accountid") != state.account_id:
        return web.json_response(NOT_AUTHORIZED)  # not an account of this user
    return web.json_response(state.positions)


def _instruments(
    state: GatewayState, _: Mapping[str, str], payload: Mapping[str, object]
) -> web.Response:
    if payload.get("omsid") != state.oms_id:
        return web.Response(body=envelope(100, "Invalid OMSId"), content_type="application/json")
    return web.json_response(state.instruments)


def _level1(
    state: GatewayState, _: Mapping[str, str], payload: Mapping[str, object]
) -> web.Response:
    instrument_id = payload.get("instrumentid")
    document = state.level1.get(instrument_id) if isinstance(instrument_id, int) else None
    if payload.get("omsid") != state.oms_id or document is None:
        body = envelope(100, f"Invalid InstrumentId: {instrument_id}")
        return web.Response(body=body, content_type="application/json")
    return web.json_response(document)


_HANDLERS = {
    "AuthenticateUser": _authenticate,
    "GetAccountPositions": _positions,
    "GetInstruments": _instruments,
    "GetLevel1": _level1,
}
