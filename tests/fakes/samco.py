"""A fake Samco Trade API (v3.2): ``POST /session/token`` and ``GET /position/getPositions``.

What it imitates, and from where:
- login: ``POST /session/token`` with JSON ``{"apiKey", "apiSecret"}`` answers the
  ``status: Success`` envelope with a top-level ``sessionToken`` (Samco's Node.js SDK README
  and samples/sessionToken.ts, samco-sdk/NodeJS-SDK v3.2.2). A refused pair answers
  ``status: Failure`` with an ``errorCode`` such as EOAUTH001 (codes as OpenAlgo's Samco
  plugin lists them); the HTTP status of a refusal is not public, so it is configurable.
- positions: ``GET /position/getPositions?positionType=DAY|NET`` with ``x-session-token``
  (seed doc samco-positions.md). Numbers are strings with thousands separators, "--" empty.
- What Samco answers for a stale token (HTTP 401, or HTTP 200 with ``status: Failure``) is not
  documented: ``stale_answer`` picks one. "Invalid positionType" is the seed fixture's text.

Every request is recorded; ``script`` queues one-off answers (status, body, headers, delay).
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from tests.fakes.scripted import Received, Reply, play, record, released_at_shutdown

SERVER_TIME = "23/11/26 09:20:05"

RELIANCE_ROW = {
    "averagePrice": "1560.15",
    "exchange": "BSE",
    "markToMarketPrice": "-182.70",
    "lastTradedPrice": "1,550.00",
    "previousClose": "1552.55",
    "productCode": "CNC",
    "symbolDescription": "RELIANCE INDUSTRIES LTD.",
    "tradingSymbol": "RELIANCE",
    "calculatedNetQuantity": "18.0",
    "averageBuyPrice": "1560.15",
    "averageSellPrice": "0.00",
    "boardLotQuantity": "1",
    "boughtPrice": "28082.70",
    "buyQuantity": "18",
    "carryForwardQuantity": "0",
    "carryForwardValue": "0.00",
    "multiplier": "1",
    "netPositionValue": "-182.70",
    "netQuantity": "18",
    "netValue": "-182.70",
    "positionType": "DAY",
    "positionConversions": ["CNC", "NRML"],
    "soldValue": "0.00",
    "transactionType": "BUY",
    "realizedGainAndLoss": "0.00",
    "unrealizedGainAndLoss": "-182.70",
    "companyName": "RELIANCE INDUSTRIES LTD.",
    "expiryDate": "--",
    "optionType": "--",
}

# A short: Samco reports it as a positive netQuantity with transactionType SELL.
SBIN_SHORT_ROW = {
    **RELIANCE_ROW,
    "averagePrice": "600.00",
    "exchange": "NSE",
    "lastTradedPrice": "598.00",
    "productCode": "MIS",
    "symbolDescription": "STATE BANK OF INDIA",
    "tradingSymbol": "SBIN-EQ",
    "calculatedNetQuantity": "-1200.0",
    "netQuantity": "1,200",
    "transactionType": "SELL",
    "realizedGainAndLoss": "--",
    "unrealizedGainAndLoss": "2,400.00",
    "companyName": "STATE BANK OF INDIA",
}

# A carry-forward future, with Indian digit grouping ("1,23,456.00").
NIFTY_NET_ROW = {
    **RELIANCE_ROW,
    "averagePrice": "24,100.00",
    "exchange": "NFO",
    "lastTradedPrice": "25,746.08",
    "productCode": "NRML",
    "symbolDescription": "NIFTY 25 NOV 2026 FUT",
    "tradingSymbol": "NIFTY26NOVFUT",
    "netQuantity": "75",
    "positionType": "NET",
    "transactionType": "BUY",
    "realizedGainAndLoss": "--",
    "unrealizedGainAndLoss": "1,23,456.00",
    "expiryDate": "25-11-2026",
}


Endpoint = Literal["login", "positions"]


@dataclass
class SamcoState:
    """What the fake knows: the valid key pair, issued tokens, rows to serve, scripted faults."""

    api_key: str
    api_secret: str
    rows: dict[str, list[dict[str, object]]] = field(
        default_factory=lambda: {"DAY": [RELIANCE_ROW, SBIN_SHORT_ROW], "NET": [NIFTY_NET_ROW]}
    )
    stale_answer: Literal["401", "failure"] = "failure"
    refused_status: int = 401  # HTTP status of a refused login (not public; see the docstring)
    requests: list[Received] = field(default_factory=list)
    valid_tokens: set[str] = field(default_factory=set)
    issued: list[str] = field(default_factory=list)
    _scripts: defaultdict[str, deque[Reply]] = field(default_factory=lambda: defaultdict(deque))
    _serial: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def script(self, endpoint: Endpoint, reply: Reply, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``endpoint`` with ``reply``."""
        self._scripts[endpoint].extend([reply] * times)

    def expire_sessions(self) -> None:
        """Every token issued so far stops working (as at 08:00 IST)."""
        self.valid_tokens.clear()

    def calls(self, endpoint: Endpoint) -> list[Received]:
        """The recorded requests to ``endpoint``, in order."""
        return [seen for seen in self.requests if seen.endpoint == endpoint]

    def _new_token(self) -> str:
        token = f"fake-jwt-{next(self._serial)}"
        self.issued.append(token)
        self.valid_tokens.add(token)
        return token


def _envelope(status: str, message: str, **extra: object) -> dict[str, object]:
    return {
        "serverTime": SERVER_TIME,
        "msgId": "786cdd94-2fc9-4c38-8f14-672ec64dd032",
        "status": status,
        "statusMessage": message,
        **extra,
    }


def make_app(state: SamcoState) -> web.Application:
    """The fake Trade API over ``state``."""
    app = web.Application()
    released = released_at_shutdown(app)  # slow scripted replies end with the test

    async def session_token(request: web.Request) -> web.Response:
        await record(request, state.requests, "login")
        if (scripted := await play(state._scripts["login"], released)) is not None:
            return scripted
        try:
            body = json.loads(await request.read())
        except ValueError:
            return web.json_response(_envelope("Failure", "Invalid request body"), status=400)
        if not isinstance(body, dict) or body.get("apiKey") != state.api_key:
            failure = _envelope("Failure", "Invalid API key", errorCode="EOAUTH001")
            return web.json_response(failure, status=state.refused_status)
        if body.get("apiSecret") != state.api_secret:
            failure = _envelope("Failure", "Invalid API secret", errorCode="EOAUTH008")
            return web.json_response(failure, status=state.refused_status)
        return web.json_response(
            _envelope(
                "Success",
                "Session token generated successfully",
                sessionToken=state._new_token(),
                tokenId="550e8400-e29b-41d4-a716-446655440000",
                accountID="DV99999",
                accountName="JOHN DOE",
                exchangeList=["NSE", "BSE", "NFO", "MCX"],
                orderTypeList=["L", "MKT", "SL", "SL-M"],
                productList=["MIS", "CNC", "NRML"],
                srcIp="203.0.113.10",
                primaryIp="203.0.113.10",
                secondaryIp="",
            )
        )

    async def get_positions(request: web.Request) -> web.Response:
        await record(request, state.requests, "positions")
        if (scripted := await play(state._scripts["positions"], released)) is not None:
            return scripted
        if request.headers.get("x-session-token") not in state.valid_tokens:
            stale = _envelope("Failure", "Session Expired. Please login again")
            return web.json_response(stale, status=401 if state.stale_answer == "401" else 200)
        position_type = request.query.get("positionType", "")
        if position_type not in state.rows:
            return web.json_response(_envelope("Failure", "Invalid positionType"))
        return web.json_response(
            _envelope(
                "Success",
                "Request successful",
                positionSummary={
                    "gainingTodayCount": "1",
                    "losingTodayCount": "1",
                    "totalGainAndLossAmount": "0.00",
                    "dayGainAndLossAmount": "2,217.30",
                },
                positionDetails=state.rows[position_type],
            )
        )

    app.router.add_post("/session/token", session_token)
    app.router.add_get("/position/getPositions", get_positions)
    return app
