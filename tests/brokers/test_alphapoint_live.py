"""AlphaPoint live client against the fake gateway: signed login, balances, prices, failures."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import pytest

from monitor.brokers import FORMATS, alphapoint
from monitor.brokers.errors import AuthExpired
from monitor.cli import main
from monitor.model import PositionKey
from tests.brokers.live import connection
from tests.fakes import serve
from tests.fakes.alphapoint import (
    GatewayState,
    balance,
    envelope,
    instrument,
    level1,
    make_app,
    payload,
)
from tests.fakes.scripted import Reply
from tests.leaks import assert_no_secret_leaks
from tests.snapshots import T0

API_KEY = "fake-api-key-0001"
API_SECRET = "fake-api-secret-not-real"
USER_ID = "96"
SECRETS = {"api_key": API_KEY, "api_secret": API_SECRET, "user_id": USER_ID}
OPTIONS = {"account_id": 4, "oms_id": 1, "quote_currency": "USD"}
BTC = PositionKey("acct", "1", "1", "")
USD = PositionKey("acct", "1", "2", "")
ETH = PositionKey("acct", "1", "3", "")
LTC = PositionKey("acct", "1", "4", "")
DOGE = PositionKey("acct", "1", "5", "")
NOT_AUTHORIZED = envelope(20, "Not Authorized")


@pytest.fixture(autouse=True)
def fast_limiter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests run at 1,000 requests/s; test_requests_are_spaced_by_the_rate_limit checks the 5/s."""
    monkeypatch.setattr(alphapoint, "REQUESTS_PER_SECOND", 1000)


def gateway() -> GatewayState:
    """0.5 BTC, 1000 USD, -2 ETH, 0 LTC, 3 DOGE; BTC, ETH and LTC trade against USD, BTC
    also against CAD; nothing trades DOGE."""
    return GatewayState(
        api_key=API_KEY,
        api_secret=API_SECRET,
        user_id=USER_ID,
        account_id=4,
        positions=[
            balance("BTC", 1, 0.5),
            balance("USD", 2, 1000),
            balance("ETH", 3, -2.0),
            balance("LTC", 4, 0.0),
            balance("DOGE", 5, 3),
        ],
        instruments=[
            instrument(21, "BTC", "CAD"),
            instrument(11, "BTC", "USD"),
            instrument(12, "ETH", "USD"),
            instrument(13, "LTC", "USD"),
        ],
        level1={
            11: level1(11, 61234.5),
            12: level1(12, 3000.25),
            13: level1(13, 80),
            21: level1(21, 83000),
        },
    )


@asynccontextmanager
async def live(
    state: GatewayState,
    secrets: Mapping[str, str] = SECRETS,
    options: Mapping[str, object] = OPTIONS,
    **kwargs: float,
) -> AsyncIterator[alphapoint.Client]:
    async with serve(make_app(state)) as base, connection(base, secrets, options, **kwargs) as conn:
        yield alphapoint.Client(conn)


def signature(nonce: str) -> str:
    """HMAC-SHA256(key=secret, message=nonce + userId + apiKey), lowercase hex, by hand."""
    message = (nonce + USER_ID + API_KEY).encode()
    return hmac.new(API_SECRET.encode(), message, hashlib.sha256).hexdigest()


async def test_login_sends_signed_headers_then_the_session_token():
    """AuthenticateUser: a GET with APIKey/Signature/UserId/Nonce; later calls send aptoken."""
    state = gateway()
    async with live(state) as client:
        await client.fetch()

    auth = state.calls("AuthenticateUser")
    assert len(auth) == 1
    assert auth[0].method == "GET"
    assert payload(auth[0]) == {}
    nonce = auth[0].headers["Nonce"]
    assert nonce.isdigit()
    signed = {
        name: auth[0].headers.get(name) for name in ("APIKey", "Signature", "UserId", "Nonce")
    }
    assert signed == {
        "APIKey": API_KEY,
        "Signature": signature(nonce),
        "UserId": USER_ID,
        "Nonce": nonce,
    }
    assert "aptoken" not in {name.lower() for name in auth[0].headers}
    later = state.requests[1:]
    assert [request.headers.get("aptoken") for request in later] == state.issued * len(later)
    positions = state.calls("GetAccountPositions")
    assert [(request.method, payload(request)) for request in positions] == [
        ("POST", {"AccountId": 4, "OMSId": 1})
    ]
    assert positions[0].headers["Content-Type"] == "application/json"


async def test_balances_priced_with_level1_of_the_quote_currency_instrument():
    """One GetLevel1 per open non-USD product with a USD instrument; MTM = amount * LastTradedPx."""
    state = gateway()
    async with live(state) as client:
        snapshot = await client.fetch()

    assert state.functions() == [
        "AuthenticateUser", "GetAccountPositions", "GetInstruments", "GetLevel1", "GetLevel1",
    ]  # fmt: skip
    assert payload(state.calls("GetInstruments")[0]) == {"OMSId": 1}
    assert [payload(request) for request in state.calls("GetLevel1")] == [
        {"OMSId": 1, "InstrumentId": 11},
        {"OMSId": 1, "InstrumentId": 12},
    ]
    assert (snapshot.account, snapshot.broker, snapshot.taken_at) == ("acct", "alphapoint", T0)
    assert list(snapshot.positions) == [BTC, USD, ETH, LTC, DOGE]
    btc, usd, eth = snapshot.positions[BTC], snapshot.positions[USD], snapshot.positions[ETH]
    # 0.5 * 61234.5 = 30617.25
    assert (btc.symbol, btc.net_qty, btc.ltp, btc.mtm) == (
        "BTC",
        Decimal("0.5"),
        Decimal("61234.5"),
        Decimal("30617.25"),
    )
    # the quote currency is worth 1: 1000 * 1 = 1000
    assert (usd.net_qty, usd.ltp, usd.mtm) == (Decimal(1000), Decimal(1), Decimal(1000))
    # -2 * 3000.25 = -6000.50
    assert (eth.net_qty, eth.ltp, eth.mtm) == (Decimal(-2), Decimal("3000.25"), Decimal("-6000.50"))
    # LTC is flat: worth 0 and never priced
    assert (snapshot.positions[LTC].mtm, snapshot.positions[LTC].ltp) == (0, None)
    # nothing trades DOGE against USD: unknown
    assert (snapshot.positions[DOGE].net_qty, snapshot.positions[DOGE].mtm) == (Decimal(3), None)


async def test_quote_currency_option_picks_the_pair():
    """quote_currency cad prices BTC with its BTC/CAD instrument; USD then has no price."""
    state = gateway()
    async with live(state, options={**OPTIONS, "quote_currency": "cad"}) as client:
        snapshot = await client.fetch()

    assert [payload(request)["InstrumentId"] for request in state.calls("GetLevel1")] == [21]
    # 0.5 * 83000 = 41500
    assert snapshot.positions[BTC].mtm == Decimal("41500.0")
    assert snapshot.positions[USD].mtm is None
    assert snapshot.positions[ETH].mtm is None


async def test_instruments_are_read_once_per_session():
    """A second poll reuses the session and the instrument list; a new session re-reads it."""
    state = gateway()
    async with live(state) as client:
        await client.fetch()
        first = len(state.requests)
        await client.fetch()
        second = len(state.requests)
        state.expire_sessions()
        snapshot = await client.fetch()

    assert state.functions()[first:second] == ["GetAccountPositions", "GetLevel1", "GetLevel1"]
    assert state.functions()[second:] == [
        "GetAccountPositions", "AuthenticateUser", "GetAccountPositions", "GetInstruments",
        "GetLevel1", "GetLevel1",
    ]  # fmt: skip
    assert snapshot.positions[BTC].mtm == Decimal("30617.25")


async def test_not_authorized_positions_log_in_again_once():
    """errorcode 20 on GetAccountPositions: one new AuthenticateUser (fresh nonce), then success."""
    state = gateway()
    async with live(state) as client:
        await client.fetch()
        state.script("GetAccountPositions", Reply(body=NOT_AUTHORIZED))
        snapshot = await client.fetch()

    assert state.functions().count("AuthenticateUser") == 2
    assert state.functions().count("GetAccountPositions") == 3
    retried = state.calls("GetAccountPositions")[-1]
    assert retried.headers["aptoken"] == state.issued[1] != state.issued[0]
    first, again = (int(request.headers["Nonce"]) for request in state.calls("AuthenticateUser"))
    assert again > first
    assert snapshot.positions[ETH].mtm == Decimal("-6000.50")


async def test_refused_login_is_auth_expired_without_credentials():
    """A wrong secret fails the fake's signature check: AuthExpired naming no credential."""
    state = gateway()
    state.login_refusal = f"Invalid APIKey {API_KEY} for user {USER_ID}"
    wrong = {**SECRETS, "api_secret": "fake-wrong-secret"}
    async with live(state, secrets=wrong) as client:
        with pytest.raises(AuthExpired) as info:
            await client.fetch()
        assert client.last_exchange is None

    text = str(info.value)
    assert (
        text == "alphapoint: AuthenticateUser: Authenticated false: Invalid APIKey *** for user ***"
    )
    assert_no_secret_leaks([*SECRETS.values(), "fake-wrong-secret"], info.value)
    assert state.functions() == ["AuthenticateUser"]


async def test_http_401_on_login_is_auth_expired():
    """AuthenticateUser answered 401: AuthExpired naming the step, no positions call."""
    state = gateway()
    state.script("AuthenticateUser", Reply(status=401, body=b"Unauthorized"))
    async with live(state) as client:
        with pytest.raises(AuthExpired) as info:
            await client.fetch()

    assert str(info.value) == "alphapoint: AuthenticateUser: HTTP 401: login refused"
    assert state.functions() == ["AuthenticateUser"]


async def test_failed_price_calls_leave_prices_unknown():
    """GetLevel1 answering HTML for BTC leaves BTC unpriced; ETH is still priced."""
    state = gateway()
    state.script("GetLevel1", Reply(body=b"<html>oops</html>", content_type="text/html"))
    async with live(state) as client:
        snapshot = await client.fetch()

    assert snapshot.positions[BTC].mtm is None
    assert snapshot.positions[ETH].mtm == Decimal("-6000.50")
    assert snapshot.positions[USD].mtm == Decimal(1000)


async def test_rate_limited_price_call_stops_pricing():
    """429 on the first GetLevel1: no further price calls this poll, the snapshot still stands."""
    state = gateway()
    state.script("GetLevel1", Reply(status=429, headers={"Retry-After": "1"}))
    async with live(state) as client:
        snapshot = await client.fetch()

    assert state.functions().count("GetLevel1") == 1
    assert (snapshot.positions[BTC].mtm, snapshot.positions[ETH].mtm) == (None, None)
    assert snapshot.positions[USD].mtm == Decimal(1000)


async def test_failed_instrument_list_is_not_cached():
    """GetInstruments 503: no prices this poll, and the next poll asks for the list again."""
    state = gateway()
    state.script("GetInstruments", Reply(status=503))
    async with live(state) as client:
        first = await client.fetch()
        second = await client.fetch()

    assert (first.positions[BTC].mtm, first.positions[USD].mtm) == (None, Decimal(1000))
    assert state.functions().count("GetInstruments") == 2
    assert second.positions[BTC].mtm == Decimal("30617.25")


async def test_never_traded_instrument_has_no_price():
    """LastTradedPx 0 means no trade yet: the balance stays unpriced rather than worth 0."""
    state = gateway()
    state.level1[11] = level1(11, 0)
    async with live(state) as client:
        snapshot = await client.fetch()

    assert snapshot.positions[BTC].mtm is None
    assert snapshot.positions[BTC].ltp is None


async def test_mixed_case_field_names_from_the_gateway():
    """OMSId/ProductSymbol, lower-case instrument keys and camelCase Level1 keys all decode."""
    state = gateway()
    state.positions = [
        {"OMSId": 1, "AccountId": 4, "ProductSymbol": "BTC", "ProductId": 1, "Amount": 0.25},
        {"omsid": 1, "accountid": 4, "productsymbol": "USD", "productid": 2, "amount": 5},
    ]
    state.instruments = [
        {name.lower(): value for name, value in instrument(11, "BTC", "USD").items()}
    ]
    state.level1[11] = {
        name[0].lower() + name[1:]: value for name, value in level1(11, 60000.5).items()
    }
    async with live(state) as client:
        snapshot = await client.fetch()

    assert "lastTradedPx" in state.level1[11]
    # 0.25 * 60000.5 = 15000.125
    assert snapshot.positions[BTC].mtm == Decimal("15000.125")
    assert snapshot.positions[USD].mtm == Decimal(5)


async def test_last_exchange_holds_the_positions_response_and_quotes_used():
    """last_exchange: the raw GetAccountPositions status and body plus the prices applied."""
    state = gateway()
    async with live(state) as client:
        await client.fetch()
        exchange = client.last_exchange

    assert exchange is not None
    assert exchange.status == 200
    assert json.loads(exchange.body) == state.positions
    assert exchange.quotes == {
        "BTC": Decimal("61234.5"),
        "USD": Decimal(1),
        "ETH": Decimal("3000.25"),
    }


def test_live_spec_names_credentials_options_and_no_default_gateway():
    """The account must name base_url, account_id and the three credentials; oms_id 1, USD."""
    live_spec = FORMATS["alphapoint"].live
    assert live_spec is not None
    assert live_spec.client is alphapoint.Client
    assert live_spec.credentials == ("api_key", "api_secret", "user_id")
    assert live_spec.base_url is None
    assert live_spec.options["account_id"].required
    assert (live_spec.options["oms_id"].default, live_spec.options["quote_currency"].default) == (
        1,
        "USD",
    )


async def test_requests_are_spaced_by_the_rate_limit(monkeypatch: pytest.MonkeyPatch):
    """At the shipped 5 requests/s, the five calls of a first poll go out at least 0.2 s apart."""
    monkeypatch.setattr(alphapoint, "REQUESTS_PER_SECOND", 5)
    state = gateway()
    async with live(state) as client:
        await client.fetch()

    times = [request.at for request in state.requests]
    assert len(times) == 5
    # Each call is sent after the previous answer, so a call arrives before the next is sent;
    # with sends 0.2 s apart, every other arrival is 0.2 s apart however late any arrives.
    # An unlimited client shows a few ms.
    assert min(later - earlier for earlier, later in zip(times, times[2:], strict=False)) >= 0.2


def test_account_without_gateway_or_account_id_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """``check`` refuses an alphapoint account lacking base_url and account_id, one line each."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "accounts:\n"
        "  - id: crypto\n"
        "    broker: alphapoint\n"
        "    credentials:\n"
        '      api_key: "${AP_API_KEY}"\n'
        '      api_secret: "${AP_API_SECRET}"\n'
        '      user_id: "${AP_USER_ID}"\n'
        "rules:\n"
        "  - name: closed\n"
        "    kind: squared_off\n"
    )

    code = main(["check", str(rules)])
    out, err = capsys.readouterr()

    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"{rules}: account 'crypto': base_url: required: an http(s) URL (line 2)",
        f"{rules}: account 'crypto': account_id: required for alphapoint (line 2)",
    ]
