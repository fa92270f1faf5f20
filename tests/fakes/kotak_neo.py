"""Fake Kotak Neo Trade API v2: TOTP + MPIN login, positions, and ltp quotes for one user.

Imitates what the official SDK (github.com/Kotak-Neo/kotak-neo-python: ``services/totp.py``,
``services/positions.py``, ``services/quotes.py``, ``settings.py``, ``utils/urls.py`` and
``docs/functions/``) and the seed ``kotak-neo-positions.md`` describe:

- ``POST /login/1.0/tradeApiLogin``: headers ``Authorization: <access token>`` (no "Bearer"),
  ``neo-fin-key: neotradeapi``; JSON ``{"mobileNumber", "ucc", "totp"}`` -> ``data.token`` (view
  token) and ``data.sid``. The TOTP is checked one 30 s step either side, as authenticators allow.
- ``POST /login/1.0/tradeApiValidate``: headers ``sid`` and ``Auth`` from the step above (plus
  ``Authorization`` and ``neo-fin-key``, as the SDK sends); JSON ``{"mpin"}`` -> ``data.token``
  (trade token), ``data.sid`` and ``data.baseUrl``, the per-user host every later call goes to.
  Here that is this server plus ``/e21``, so a client that ignores ``baseUrl`` gets 404s.
- ``GET {baseUrl}/quick/user/positions``: headers ``Auth`` (trade token) and ``Sid``; body
  ``{"stat": "Ok", "stCode": 200, "data": [rows]}`` as in the seed. A stale or unknown session
  gets ``stale_reply`` (HTTP 403 by default: "Invalid session, please re-login to continue").
- ``GET {baseUrl}/script-details/1.0/quotes/neosymbol/<seg|tok,seg|tok>/ltp``: header
  ``Authorization: <access token>`` only; a bare JSON array of quote objects whose ``ltp`` is a
  string (``exchange``, ``exchange_token``, ``display_symbol``, ``ltp``). The ``|`` and ``,``
  delimiters must reach the server literally (the SDK quotes the symbols with ``safe="|,"``).
- At most ``rate_limit`` requests a second per user across all APIs; more get HTTP 429.

Every request is recorded (endpoint, raw path, headers, body, arrival time, the status and
body served) and each endpoint can be scripted with one-shot replies: any status, raw bytes,
headers such as Retry-After, and a delay longer than the client's timeout.

Not public, so chosen here and marked where used: the HTTP status and error codes for a wrong
TOTP, MPIN or access token, the bodies of 401/403/429/5xx answers, the exact shape of an
``ltp``-type quote (taken as the documented ``all`` fields it needs), and what the server does
with a percent-encoded symbol list.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from monitor.brokers import totp
from tests.fakes.scripted import (
    Received,
    Reply,
    json_or_none,
    json_reply,
    play,
    record,
    released_at_shutdown,
    send,
)

FIN_KEY = "neotradeapi"
USER_PREFIX = "/e21"  # path of the per-user baseUrl under this server
LOGIN_PATH = "/login/1.0/tradeApiLogin"
VALIDATE_PATH = "/login/1.0/tradeApiValidate"
POSITIONS_PATH = USER_PREFIX + "/quick/user/positions"
QUOTES_PREFIX = USER_PREFIX + "/script-details/1.0/quotes/neosymbol/"
# The documented quote types; this fake prices only ``ltp``.
QUOTE_TYPES = frozenset(
    {"all", "market_depth", "ohlc", "ltp", "oi", "52w", "circuit_limits", "scrip_details"}
)
RATE_LIMIT = 10  # requests per second per user, across all APIs
# Arrival times lag the client's sends by a few milliseconds on an idle machine and by far more
# on a busy one; the real server's window accounting is not public, so the window is this much
# shorter than 1 s.
RATE_SLACK = 0.3

# The seed sample row: every field the real positions body carries.
SEED_ROW: Mapping[str, str] = {
    "buyAmt": "0.00",
    "cfSellAmt": "0.00",
    "prod": "NRML",
    "exSeg": "nse_fo",
    "sqrFlg": "Y",
    "actId": "PRS2206",
    "cfBuyQty": "0",
    "cfSellQty": "0",
    "tok": "53179",
    "flBuyQty": "0",
    "flSellQty": "0",
    "sellAmt": "0.00",
    "posFlg": "true",
    "cfBuyAmt": "0.00",
    "stkPrc": "0.00",
    "trdSym": "BANKNIFTY21JULFUT",
    "sym": "BANKNIFTY",
    "expDt": "29 Jul, 2021",
    "type": "FUTIDX",
    "series": "XX",
    "brdLtQty": "25",
    "exp": "1627569000",
    "optTp": "XX",
    "genNum": "1",
    "genDen": "1",
    "prcNum": "1",
    "prcDen": "1",
    "lotSz": "25",
    "multiplier": "1",
    "precision": "2",
    "hsUpTm": "2021/07/13 18:34:44",
}


def row(**fields: str) -> dict[str, str]:
    """A positions row: the seed sample's fields with ``fields`` replaced."""
    return {**SEED_ROW, **fields}


def error_reply(status: int, code: str, message: str) -> Reply:
    """The login API's documented error shape: ``{"error": [{"code", "message"}]}``."""
    return json_reply({"error": [{"code": code, "message": message}]}, status)


def not_ok_reply(st_code: int, message: str, status: int = 200) -> Reply:
    """The trading API's error envelope: ``{"stat": "Not_Ok", "stCode", "errMsg"}``."""
    return json_reply({"stat": "Not_Ok", "stCode": st_code, "errMsg": message}, status)


# Documented for positions: 403 "Invalid session, please re-login to continue". The body of
# that 403 is not public; the Not_Ok envelope with stCode 1003 is what a stale session gets
# with HTTP 200 (our issue), so the same envelope is used here.
INVALID_SESSION_403 = not_ok_reply(1003, "Invalid session", status=403)
HTML_502 = Reply(502, b"<html><head><title>502 Bad Gateway</title></head></html>")


class KotakNeoState:
    """One user's account: credentials, rows and prices served, requests seen, faults queued."""

    def __init__(
        self,
        *,
        access_token: str,
        mobile_number: str,
        ucc: str,
        mpin: str,
        totp_secret: str,
        rows: list[dict[str, str]] | None = None,
        ltps: Mapping[str, str] | None = None,
        rate_limit: int | None = RATE_LIMIT,
    ) -> None:
        self.access_token = access_token
        self.mobile_number = mobile_number
        self.ucc = ucc
        self.mpin = mpin
        self.totp_key = totp.decode_secret(totp_secret)
        self.rows = rows if rows is not None else []
        self.ltps = dict(ltps or {})  # "exSeg|tok" -> last price as the API writes it
        self.rate_limit = rate_limit
        self.stale_reply = INVALID_SESSION_403
        self.requests: list[Received] = []
        self.issued: list[str] = []  # every token and sid handed out, in order
        self._faults: defaultdict[str, deque[Reply]] = defaultdict(deque)
        self._views: dict[str, str] = {}  # view token -> its sid
        self._sessions: dict[str, str] = {}  # trade token -> its sid
        self._ids = itertools.count(1)

    def script(self, endpoint: str, *replies: Reply) -> None:
        """Answer the next requests to ``endpoint`` with ``replies``, one each, in order."""
        self._faults[endpoint].extend(replies)

    def expire_sessions(self, reply: Reply | None = None) -> None:
        """End every trade session; stale tokens get ``reply`` (default: the 403)."""
        self._sessions.clear()
        self.stale_reply = reply or INVALID_SESSION_403

    def calls(self, endpoint: str) -> list[Received]:
        """The recorded requests to ``endpoint``, in arrival order."""
        return [r for r in self.requests if r.endpoint == endpoint]

    def _over_rate_limit(self, now: float) -> bool:
        if self.rate_limit is None:
            return False
        window_start = now - (1.0 - RATE_SLACK)
        recent = sum(1 for r in self.requests[:-1] if r.at > window_start and r.status != 429)
        return recent >= self.rate_limit

    def _issue(self, kind: str) -> tuple[str, str]:
        n = next(self._ids)
        token, sid = f"fake-{kind}-token-{n:04d}", f"fake-{kind}-sid-{n:04d}"
        self.issued += [token, sid]
        return token, sid


_ENDPOINTS = {
    LOGIN_PATH: "login",
    VALIDATE_PATH: "validate",
    POSITIONS_PATH: "positions",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def totp_matches(key: bytes, code: str) -> bool:
    """True when ``code`` is the TOTP of ``key`` for now or one step either side."""
    now = time.time()
    return any(totp.code(key, now + steps * totp.STEP) == code for steps in (-1, 0, 1))


def make_app(state: KotakNeoState) -> web.Application:
    """An aiohttp app serving ``state`` the way the Neo Trade API would."""
    app = web.Application()
    released = released_at_shutdown(app)

    @web.middleware
    async def recording(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.rel_url.raw_path
        endpoint = _ENDPOINTS.get(path, "quotes" if path.startswith(QUOTES_PREFIX) else "unknown")
        received = await record(request, state.requests, endpoint)
        response: web.StreamResponse | None
        if state._over_rate_limit(received.at):
            # The 429 body is not public; Neo sends no Retry-After (observed by third parties).
            response = await send(not_ok_reply(429, "Too many requests", 429))
        else:
            response = await play(state._faults[endpoint], released)
        if response is None:
            try:
                response = await handler(request)
            except web.HTTPException as err:  # 404 for a path the API does not have
                received.status = err.status
                raise
        received.status = response.status
        received.reply = response.body if isinstance(response, web.Response) else b""  # type: ignore[assignment]
        return response

    async def login(request: web.Request) -> web.Response:
        missing = _missing(request, "Authorization", "neo-fin-key")
        if missing:
            return await send(missing)
        if request.headers["Authorization"] != state.access_token:
            # Status and code for a wrong access token are not public (900901 is the API
            # gateway's "Invalid Credentials" code, a guess).
            return await send(error_reply(401, "900901", "Invalid Credentials"))
        if request.headers["neo-fin-key"] != FIN_KEY:
            return await send(error_reply(401, "900901", "Invalid neo-fin-key"))
        body = _json_object(await request.read())
        for key, name in (("mobileNumber", "MobileNumber"), ("ucc", "Ucc"), ("totp", "Totp")):
            if not isinstance(body.get(key), str) or not body[key]:
                # Documented shape and message for a missing field.
                return await send(error_reply(400, "400", f"Missing required field '{name}'"))
        if body["mobileNumber"] != state.mobile_number or body["ucc"] != state.ucc:
            # Status and code not public.
            return await send(error_reply(400, "10501", "Invalid mobile number or UCC"))
        if not totp_matches(state.totp_key, body["totp"]):
            # Status and code for a wrong TOTP are not public.
            return await send(error_reply(400, "10524", "Invalid TOTP"))
        token, sid = state._issue("view")
        state._views[token] = sid
        return await send(
            json_reply({"data": {
                "token": token, "sid": sid, "rid": f"rid-{sid}", "ucc": state.ucc,
                "kType": "View", "status": "success", "dataCenter": "E21",
                "isUserPwdExpired": False,
            }})
        )  # fmt: skip

    async def validate(request: web.Request) -> web.Response:
        missing = _missing(request, "Authorization", "neo-fin-key", "sid", "Auth")
        if missing:
            return await send(missing)
        headers = request.headers
        if headers["Authorization"] != state.access_token or headers["neo-fin-key"] != FIN_KEY:
            return await send(error_reply(401, "900901", "Invalid Credentials"))
        if state._views.get(headers["Auth"]) != headers["sid"]:
            # Status and code not public.
            return await send(error_reply(401, "10515", "Invalid view token or sid"))
        body = _json_object(await request.read())
        if not isinstance(body.get("mpin"), str) or not body["mpin"]:
            return await send(error_reply(400, "400", "Missing required field 'Mpin'"))
        if body["mpin"] != state.mpin:
            # Status and code for a wrong MPIN are not public.
            return await send(error_reply(400, "10521", "Invalid MPIN"))
        token, sid = state._issue("trade")
        state._sessions[token] = sid
        base_url = f"{request.url.origin()}{USER_PREFIX}"
        return await send(
            json_reply({"data": {
                "token": token, "sid": sid, "rid": f"rid-{sid}", "baseUrl": base_url,
                "ucc": state.ucc, "kType": "Trade", "status": "success", "dataCenter": "E21",
            }})
        )  # fmt: skip

    async def positions(request: web.Request) -> web.Response:
        token, sid = request.headers.get("Auth"), request.headers.get("Sid")
        if token is None or sid is None or state._sessions.get(token) != sid:
            return await send(state.stale_reply, released)
        # As the seed writes it. The SDK's newer docs sample has "stat": "ok", and its smoke test
        # treats {"stat": "Not_Ok", "stCode": 5203, "errMsg": "No Data"} as "no positions";
        # script those replies to imitate them.
        return await send(json_reply({"stat": "Ok", "stCode": 200, "data": state.rows}))

    async def quotes(request: web.Request) -> web.Response:
        raw = request.rel_url.raw_path[len(QUOTES_PREFIX) :]
        symbols, _, kind = raw.rpartition("/")
        if "%7C" in symbols.upper() or "%2C" in symbols.upper():
            # The SDK keeps "|" and "," literal because the API expects them so; what it
            # answers to an encoded list is not public.
            return await send(not_ok_reply(1009, "Invalid neosymbol", status=400))
        if request.headers.get("Authorization") != state.access_token:
            return await send(not_ok_reply(1003, "Invalid session", status=403))
        if kind not in QUOTE_TYPES or not symbols:
            return await send(not_ok_reply(1009, "Invalid quote type", status=400))
        symbols_by_key = {f"{r['exSeg']}|{r['tok']}": r["trdSym"] for r in state.rows}
        items = []
        for symbol in symbols.split(","):
            if symbol in state.ltps:
                segment, _, token = symbol.partition("|")
                items.append({
                    "exchange_token": token,
                    "display_symbol": symbols_by_key.get(symbol, token),
                    "exchange": segment,
                    "lstup_time": "1782374657",
                    "ltp": state.ltps[symbol],
                })  # fmt: skip
        if not items:
            # HTTP 200 with a Not_Ok object for unknown instruments, as third parties observed.
            return await send(not_ok_reply(1009, "Invalid neosymbol"))
        return await send(json_reply(items))

    app.middlewares.append(recording)
    app.router.add_post(LOGIN_PATH, login)
    app.router.add_post(VALIDATE_PATH, validate)
    app.router.add_get(POSITIONS_PATH, positions)
    app.router.add_get(QUOTES_PREFIX + "{symbols}/{kind}", quotes)
    return app


def _missing(request: web.Request, *names: str) -> Reply | None:
    """The documented "Required header not found." error when a header is absent."""
    if all(name in request.headers for name in names):
        return None
    return error_reply(400, "10512", "Required header not found.")


def _json_object(body: bytes) -> dict[str, object]:
    value = json_or_none(body)
    return value if isinstance(value, dict) else {}
