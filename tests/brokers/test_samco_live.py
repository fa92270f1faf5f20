"""Samco live client against the local fake Trade API: login, session reuse and renewal, errors."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from monitor.brokers import FORMATS, samco
from monitor.brokers.errors import AuthExpired, BadResponse, BrokerUnavailable
from monitor.brokers.transport import Exchange
from monitor.model import PositionKey
from tests.brokers.live import connection
from tests.fakes import serve
from tests.fakes.samco import SamcoState, make_app
from tests.fakes.scripted import Reply, json_reply
from tests.leaks import assert_no_secret_leaks
from tests.snapshots import IST, T0

API_KEY = "fake-samco-api-key"
API_SECRET = "fake-samco-api-secret-DO-NOT-LEAK"
SECRETS = {"api_key": API_KEY, "api_secret": API_SECRET}
ACCOUNT = "acct"
RELIANCE = PositionKey(ACCOUNT, "BSE", "RELIANCE", "CNC")
SBIN = PositionKey(ACCOUNT, "NSE", "SBIN-EQ", "MIS")
NIFTY = PositionKey(ACCOUNT, "NFO", "NIFTY26NOVFUT", "NRML")


@pytest.fixture
async def fake() -> AsyncIterator[tuple[SamcoState, str]]:
    """A fake Samco that accepts the test key pair, and its base URL."""
    state = SamcoState(api_key=API_KEY, api_secret=API_SECRET)
    async with serve(make_app(state)) as base_url:
        yield state, base_url


async def test_login_request_is_exact(fake):
    """The first fetch POSTs /session/token with exactly {apiKey, apiSecret} as JSON."""
    state, base_url = fake
    async with connection(base_url, SECRETS) as conn:
        await samco.Client(conn).fetch()

    login = state.requests[0]
    assert (login.method, login.path, login.query) == ("POST", "/session/token", {})
    assert login.json() == {"apiKey": API_KEY, "apiSecret": API_SECRET}
    assert login.headers["Content-Type"] == "application/json"
    assert login.headers["Accept"] == "application/json"
    assert "x-session-token" not in login.headers


async def test_positions_request_carries_the_session_token_and_day(fake):
    """Positions are a GET with x-session-token, JSON Accept/Content-Type and positionType=DAY."""
    state, base_url = fake
    async with connection(base_url, SECRETS) as conn:
        await samco.Client(conn).fetch()

    assert [seen.path for seen in state.requests] == ["/session/token", "/position/getPositions"]
    positions = state.requests[1]
    assert positions.method == "GET"
    assert positions.query == {"positionType": "DAY"}
    assert positions.headers["x-session-token"] == state.issued[0] == "fake-jwt-1"
    assert positions.headers["Accept"] == "application/json"
    assert positions.headers["Content-Type"] == "application/json"
    assert positions.body == b""


async def test_net_option_asks_for_net_positions(fake):
    """position_type NET is sent as positionType=NET and yields the carry-forward rows."""
    state, base_url = fake
    async with connection(base_url, SECRETS, {"position_type": "NET"}) as conn:
        snapshot = await samco.Client(conn).fetch()

    assert state.calls("positions")[0].query == {"positionType": "NET"}
    assert list(snapshot.positions) == [NIFTY]
    # unrealizedGainAndLoss "1,23,456.00" (Indian grouping) + realized "--" (0)
    assert snapshot.positions[NIFTY].mtm == Decimal("123456.00")
    assert snapshot.positions[NIFTY].ltp == Decimal("25746.08")


async def test_snapshot_is_parsed_from_the_served_rows(fake):
    """The DAY rows come out keyed and signed: the SELL row with netQuantity "1,200" is -1200."""
    _, base_url = fake
    async with connection(base_url, SECRETS) as conn:
        snapshot = await samco.Client(conn).fetch()

    assert (snapshot.account, snapshot.broker, snapshot.taken_at) == (ACCOUNT, "samco", T0)
    assert list(snapshot.positions) == [RELIANCE, SBIN]
    reliance = snapshot.positions[RELIANCE]
    assert reliance.net_qty == Decimal("18")
    assert reliance.ltp == Decimal("1550.00")  # "1,550.00"
    assert reliance.mtm == Decimal("-182.70")  # 0.00 + -182.70
    short = snapshot.positions[SBIN]
    assert short.net_qty == Decimal("-1200")
    assert short.mtm == Decimal("2400.00")  # "--" (0) + "2,400.00"


async def test_session_is_reused_across_fetches(fake):
    """Three fetches log in once and send the same token three times."""
    state, base_url = fake
    async with connection(base_url, SECRETS) as conn:
        client = samco.Client(conn)
        for _ in range(3):
            await client.fetch()

    assert len(state.calls("login")) == 1
    tokens = [seen.headers["x-session-token"] for seen in state.calls("positions")]
    assert tokens == ["fake-jwt-1"] * 3


async def test_persistent_failure_envelope_surfaces_bad_response_after_one_renewal(fake):
    """A status Failure that survives a fresh session is a BadResponse, not a login loop."""
    state, base_url = fake
    failure = {"status": "Failure", "statusMessage": "Something went wrong"}
    async with connection(base_url, SECRETS) as conn:
        client = samco.Client(conn)
        await client.fetch()
        state.script("positions", json_reply(failure), times=10)
        with pytest.raises(BadResponse) as info:
            await client.fetch()

    assert type(info.value) is BadResponse
    assert str(info.value) == "samco: status Failure: Something went wrong"
    assert len(state.calls("login")) == 2
    assert len(state.calls("positions")) == 3


async def test_failure_on_a_token_just_issued_is_not_retried(fake):
    """On the first fetch a status Failure is a BadResponse at once: one login, one call."""
    state, base_url = fake
    state.rows = {"DAY": []}
    async with connection(base_url, SECRETS, {"position_type": "NET"}) as conn:
        with pytest.raises(BadResponse) as info:
            await samco.Client(conn).fetch()

    assert str(info.value) == "samco: status Failure: Invalid positionType"
    assert (len(state.calls("login")), len(state.calls("positions"))) == (1, 1)


@pytest.mark.parametrize("refused_status", [401, 403, 400, 200])
@pytest.mark.parametrize("wrong", ["api_key", "api_secret"])
async def test_refused_login_is_auth_expired_without_the_secret(fake, refused_status, wrong):
    """A refused key pair is AuthExpired naming the step and code, never a credential."""
    state, base_url = fake
    state.refused_status = refused_status
    secrets = {**SECRETS, wrong: "fake-wrong-value-DO-NOT-LEAK"}
    async with connection(base_url, secrets) as conn:
        with pytest.raises(AuthExpired) as info:
            await samco.Client(conn).fetch()

    code = "EOAUTH001" if wrong == "api_key" else "EOAUTH008"
    step = f"HTTP {refused_status}" if refused_status != 200 else "status 'Failure'"
    assert str(info.value) == f"samco: session/token: {step}: login refused, errorCode {code}"
    assert_no_secret_leaks([*SECRETS.values(), "fake-wrong-value-DO-NOT-LEAK"], info.value)
    assert state.calls("positions") == []


async def test_login_without_a_session_token_is_auth_expired(fake):
    """A Success envelope lacking sessionToken cannot be used: AuthExpired, no positions call."""
    state, base_url = fake
    state.script("login", json_reply({"status": "Success", "statusMessage": "ok"}))
    async with connection(base_url, SECRETS) as conn:
        with pytest.raises(AuthExpired) as info:
            await samco.Client(conn).fetch()

    assert str(info.value) == "samco: session/token: status 'Success': login refused"
    assert state.calls("positions") == []


async def test_malformed_login_body_is_bad_response(fake):
    """A login answer that is not JSON is a BadResponse naming samco; positions are not asked."""
    state, base_url = fake
    state.script("login", Reply(body=b"<html>maintenance</html>"))
    async with connection(base_url, SECRETS) as conn:
        with pytest.raises(BadResponse) as info:
            await samco.Client(conn).fetch()

    assert str(info.value).startswith("samco: body: not valid JSON")
    assert state.calls("positions") == []


async def test_last_exchange_holds_the_positions_answer_and_replays_to_the_same_snapshot(fake):
    """last_exchange is the raw positions answer with no quotes; parse() of it equals the fetch."""
    _, base_url = fake
    async with connection(base_url, SECRETS) as conn:
        client = samco.Client(conn)
        assert client.last_exchange is None
        snapshot = await client.fetch()

    exchange = client.last_exchange
    assert exchange is not None
    assert (exchange.status, exchange.quotes) == (200, {})
    assert json.loads(exchange.body)["positionDetails"][0]["tradingSymbol"] == "RELIANCE"
    replayed = samco.parse(exchange.body, account=ACCOUNT, taken_at=T0, quotes=exchange.quotes)
    assert replayed == snapshot


async def test_last_exchange_records_a_failed_answer_and_resets_each_fetch(fake):
    """A 503 is kept in last_exchange; the next fetch replaces it with its own answer."""
    state, base_url = fake
    state.script("positions", Reply(status=503, body=b"busy"))
    async with connection(base_url, SECRETS) as conn:
        client = samco.Client(conn)
        with pytest.raises(BrokerUnavailable):
            await client.fetch()
        assert client.last_exchange == Exchange(503, b"busy", {})
        await client.fetch()

    assert client.last_exchange is not None and client.last_exchange.status == 200


@pytest.mark.parametrize(
    "message", ["No Positions Found", "no positions found", " NO POSITIONS FOUND "]
)
async def test_no_positions_failure_is_an_empty_snapshot_without_renewal(fake, message):
    """A Failure envelope saying only "no positions" is an empty book, live and in replay."""
    state, base_url = fake
    async with connection(base_url, SECRETS) as conn:
        client = samco.Client(conn)
        await client.fetch()
        state.script("positions", json_reply({"status": "Failure", "statusMessage": message}))
        snapshot = await client.fetch()

    assert snapshot.positions == {}
    assert len(state.calls("login")) == 1
    assert client.last_exchange is not None
    replayed = samco.parse(client.last_exchange.body, account=ACCOUNT, taken_at=T0, quotes={})
    assert replayed == snapshot


async def test_empty_position_details_is_an_empty_snapshot(fake):
    """A Success envelope with positionDetails [] is an empty snapshot."""
    state, base_url = fake
    state.rows["DAY"] = []
    async with connection(base_url, SECRETS) as conn:
        snapshot = await samco.Client(conn).fetch()

    assert snapshot.positions == {}
    assert snapshot.taken_at == T0


async def test_session_is_renewed_before_0800_ist_next_day_without_a_failed_call(fake):
    """A token from 09:20 IST is replaced by a new login at 08:00 IST the next day, not before."""
    state, base_url = fake
    now = [T0]
    async with connection(base_url, SECRETS) as conn:
        client = samco.Client(dataclasses.replace(conn, clock=lambda: now[0]))
        await client.fetch()
        now[0] = datetime(2026, 11, 24, 7, 59, 59, tzinfo=IST)
        await client.fetch()
        now[0] += timedelta(seconds=1)
        state.expire_sessions()
        await client.fetch()

    assert [seen.path for seen in state.requests] == [
        "/session/token",
        "/position/getPositions",
        "/position/getPositions",
        "/session/token",
        "/position/getPositions",
    ]
    tokens = [seen.headers["x-session-token"] for seen in state.calls("positions")]
    assert tokens == ["fake-jwt-1", "fake-jwt-1", "fake-jwt-2"]


def test_live_spec_declares_credentials_options_and_base_url():
    """The broker table polls samco live with api_key/api_secret, position_type DAY|NET."""
    live = FORMATS["samco"].live
    assert live is not None
    assert live.client is samco.Client
    assert live.credentials == ("api_key", "api_secret")
    assert live.base_url == "https://tradeapi.samco.in"
    position_type = live.options["position_type"]
    assert position_type.default == "DAY"
    assert position_type.read("net") == "NET"
    with pytest.raises(ValueError, match="must be one of DAY, NET"):
        position_type.read("CNC")
