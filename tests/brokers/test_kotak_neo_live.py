"""Kotak Neo live client against the fake Trade API: login, positions, quotes, failures, limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from decimal import Decimal

import aiohttp
import pytest
from yarl import URL

from monitor.brokers import kotak_neo, totp
from monitor.brokers.errors import AuthExpired, BadResponse
from monitor.model import PositionKey
from tests.brokers.live import connection
from tests.fakes import serve
from tests.fakes.kotak_neo import (
    FIN_KEY,
    HTML_502,
    POSITIONS_PATH,
    QUOTES_PREFIX,
    RATE_SLACK,
    KotakNeoState,
    make_app,
    not_ok_reply,
    row,
    totp_matches,
)
from tests.fakes.scripted import Reply, json_reply
from tests.leaks import assert_no_secret_leaks
from tests.snapshots import T0

ACCESS_TOKEN = "fake-access-token-7Qx2"
MOBILE = "+910000000001"
UCC = "FAKEUC1"
MPIN = "918273"
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
SECRETS = {
    "access_token": ACCESS_TOKEN,
    "mobile_number": MOBILE,
    "ucc": UCC,
    "mpin": MPIN,
    "totp_secret": TOTP_SECRET,
}

# Open long: net = (flBuyQty 40 + cfBuyQty 10) - (flSellQty 20 + cfSellQty 5) = 25.
OPEN_FO = row(
    exSeg="nse_fo", tok="53179", prod="NRML", trdSym="BANKNIFTY21JULFUT",
    flBuyQty="40", cfBuyQty="10", flSellQty="20", cfSellQty="5",
    buyAmt="4000.00", cfBuyAmt="1000.00", sellAmt="2500.00", cfSellAmt="125.50",
    multiplier="2", genNum="3", genDen="4", prcNum="5", prcDen="8",
)  # fmt: skip
# Flat: bought and sold 25, so it needs no price.
FLAT_FO = row(
    exSeg="nse_fo", tok="60000", prod="MIS", trdSym="NIFTY21JULFUT",
    flBuyQty="25", flSellQty="25", buyAmt="100.00", sellAmt="150.00",
)  # fmt: skip
# Open short in the cash segment: net = 0 - 7 = -7.
SHORT_CM = row(
    exSeg="nse_cm", tok="11536", prod="CNC", trdSym="TCS-EQ", type="", expDt="", exp="",
    flSellQty="7", sellAmt="22750.00", lotSz="1", brdLtQty="1",
)  # fmt: skip
LTPS = {"nse_fo|53179": "101.2000", "nse_cm|11536": "3248.3000", "nse_fo|60000": "99.0000"}

ACCOUNT = "acct"  # tests.brokers.live.connection's default
FO = PositionKey(ACCOUNT, "nse_fo", "53179", "NRML")
FLAT = PositionKey(ACCOUNT, "nse_fo", "60000", "MIS")
CM = PositionKey(ACCOUNT, "nse_cm", "11536", "CNC")
BATCH_PATH = QUOTES_PREFIX + "nse_fo|53179,nse_cm|11536/ltp"


def make_state(rows: list[dict[str, str]] | None = None) -> KotakNeoState:
    """The fake account holding OPEN_FO, FLAT_FO and SHORT_CM (in that order) and LTPS."""
    rows = rows if rows is not None else [dict(OPEN_FO), dict(FLAT_FO), dict(SHORT_CM)]
    return KotakNeoState(
        access_token=ACCESS_TOKEN, mobile_number=MOBILE, ucc=UCC, mpin=MPIN,
        totp_secret=TOTP_SECRET, rows=rows, ltps=LTPS,
    )  # fmt: skip


@asynccontextmanager
async def live(
    state: KotakNeoState, secrets: Mapping[str, str] = SECRETS, **options: float
) -> AsyncIterator[kotak_neo.Client]:
    """A live client talking to the fake serving ``state``."""
    async with serve(make_app(state)) as base, connection(base, secrets, **options) as conn:
        yield kotak_neo.Client(conn)


def endpoints(state: KotakNeoState) -> list[str]:
    """The endpoint of every request the fake saw, in arrival order."""
    return [r.endpoint for r in state.requests]


async def test_login_flow_sends_the_documented_headers_and_bodies():
    """Both login steps, then positions, carry exactly the headers and bodies the API requires."""
    state = make_state()
    async with live(state) as client:
        await client.fetch()

    assert endpoints(state) == ["login", "validate", "positions", "quotes"]
    login, validate, positions, _ = state.requests
    assert (login.method, login.path) == ("POST", "/login/1.0/tradeApiLogin")
    assert login.headers["Authorization"] == ACCESS_TOKEN  # as is: no "Bearer"
    assert login.headers["neo-fin-key"] == FIN_KEY
    body = login.json()
    assert body == {"mobileNumber": MOBILE, "ucc": UCC, "totp": body["totp"]}
    assert totp_matches(totp.decode_secret(TOTP_SECRET), body["totp"])
    assert login.status == 200

    view = login.reply_json()["data"]
    assert (validate.method, validate.path) == ("POST", "/login/1.0/tradeApiValidate")
    assert validate.headers["sid"] == view["sid"]
    assert validate.headers["Auth"] == view["token"]
    assert validate.headers["Authorization"] == ACCESS_TOKEN
    assert validate.headers["neo-fin-key"] == FIN_KEY
    assert validate.json() == {"mpin": MPIN}
    assert validate.status == 200

    trade = validate.reply_json()["data"]
    assert (positions.method, positions.path) == ("GET", POSITIONS_PATH)  # under data.baseUrl
    assert positions.headers["Auth"] == trade["token"]
    assert positions.headers["Sid"] == trade["sid"]
    assert positions.headers["neo-fin-key"] == FIN_KEY
    assert "Authorization" not in positions.headers
    assert positions.status == 200


async def test_open_rows_are_priced_by_one_batched_ltp_call():
    """After positions, one quotes call asks for every open row with literal | and , separators."""
    state = make_state()
    async with live(state) as client:
        await client.fetch()

    (quotes,) = state.calls("quotes")
    assert quotes.method == "GET"
    assert quotes.path == BATCH_PATH  # the flat nse_fo|60000 is not asked for
    assert quotes.headers["Authorization"] == ACCESS_TOKEN
    assert "Auth" not in quotes.headers
    assert "Sid" not in quotes.headers
    assert quotes.status == 200


async def test_mtm_matches_the_hand_computed_formula():
    """MTM = cash + net * ltp * multiplier * genNum/genDen * prcNum/prcDen, per row, exactly."""
    state = make_state()
    async with live(state) as client:
        snapshot = await client.fetch()

    assert snapshot.account == ACCOUNT
    assert snapshot.broker == "kotak_neo"
    assert snapshot.taken_at == T0
    assert list(snapshot.positions) == [FO, FLAT, CM]

    fo = snapshot.positions[FO]
    assert fo.net_qty == 25
    assert fo.ltp == Decimal("101.2000")
    # cash   = (2500.00 + 125.50) - (4000.00 + 1000.00)        = -2374.50
    # factor = multiplier 2 * (genNum 3 / genDen 4) * (prcNum 5 / prcDen 8) = 0.9375
    # mtm    = -2374.50 + 25 * 101.2000 * 0.9375 = -2374.50 + 2371.875 = -2.625
    assert fo.mtm == Decimal("-2.625")

    flat = snapshot.positions[FLAT]
    assert flat.net_qty == 0
    assert flat.ltp is None  # not quoted
    assert flat.mtm == Decimal("50.00")  # 150.00 - 100.00

    cm = snapshot.positions[CM]
    assert cm.net_qty == -7
    # mtm = 22750.00 + (-7) * 3248.3000 * 1 = 22750.00 - 22738.10 = 11.90
    assert cm.mtm == Decimal("11.90")
    assert cm.symbol == "TCS-EQ"


async def test_only_flat_rows_make_no_quote_call():
    """When every row is flat the poll ends after positions: nothing needs a price."""
    state = make_state(rows=[dict(FLAT_FO)])
    async with live(state) as client:
        snapshot = await client.fetch()

    assert endpoints(state) == ["login", "validate", "positions"]
    assert snapshot.positions[FLAT].mtm == Decimal("50.00")
    assert client.last_exchange is not None
    assert client.last_exchange.quotes == {}


async def test_more_open_rows_than_one_batch_split_into_calls_of_one_hundred():
    """101 open rows are priced in two quote calls of 100 and 1 instruments, in row order."""
    rows = [row(tok=str(1000 + n), flBuyQty="1", buyAmt="10.00") for n in range(101)]
    state = make_state(rows=rows)
    state.ltps = {f"nse_fo|{1000 + n}": "11.0000" for n in range(101)}
    async with live(state) as client:
        snapshot = await client.fetch()

    first, second = state.calls("quotes")
    assert first.path == QUOTES_PREFIX + ",".join(f"nse_fo|{1000 + n}" for n in range(100)) + "/ltp"
    assert second.path == QUOTES_PREFIX + "nse_fo|1100/ltp"
    # every row: -10.00 + 1 * 11.0000 = 1.00
    assert {p.mtm for p in snapshot.positions.values()} == {Decimal("1.00")}


async def test_wrong_mpin_is_auth_expired_naming_the_step():
    """The fake refuses a wrong MPIN; the error names tradeApiValidate and never the MPIN."""
    state = make_state()
    async with live(state, {**SECRETS, "mpin": "564738"}) as client:
        with pytest.raises(AuthExpired) as info:
            await client.fetch()
        assert client.last_exchange is None

    assert endpoints(state) == ["login", "validate"]
    assert state.calls("validate")[0].status == 400
    assert str(info.value) == "kotak_neo: tradeApiValidate: HTTP 400: login refused"
    assert_no_secret_leaks([*SECRETS.values(), "564738"], info.value)


async def test_totp_from_the_wrong_secret_is_refused_at_the_login_step():
    """The fake verifies the TOTP: one from another secret fails tradeApiLogin, no MPIN is sent."""
    state = make_state()
    other_secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    async with live(state, {**SECRETS, "totp_secret": other_secret}) as client:
        with pytest.raises(AuthExpired) as info:
            await client.fetch()

    assert endpoints(state) == ["login"]
    assert state.calls("login")[0].status == 400
    assert str(info.value) == "kotak_neo: tradeApiLogin: HTTP 400: login refused"
    assert_no_secret_leaks([*SECRETS.values(), other_secret], info.value)


async def test_validate_reply_without_base_url_is_bad_response():
    """A trade token without data.baseUrl cannot be used: BadResponse naming the field."""
    state = make_state()
    state.script("validate", json_reply({"data": {"token": "fake-trade-token", "sid": "fake-sid"}}))
    async with live(state) as client:
        with pytest.raises(BadResponse) as info:
            await client.fetch()

    assert str(info.value) == "kotak_neo: tradeApiValidate: data.baseUrl: missing or not a URL"
    assert endpoints(state) == ["login", "validate"]


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(not_ok_reply(500, "Unexpected error", 500), id="500"),
        pytest.param(HTML_502, id="502-html"),
        pytest.param(not_ok_reply(503, "Trade API service is unavailable", 503), id="503"),
        pytest.param(json_reply({"stat": "Not_Ok"}, 429, **{"Retry-After": "3"}), id="429"),
        pytest.param(Reply(200, b'[{"exchange": "nse_fo", "ltp": '), id="truncated"),
        pytest.param(Reply(200, b"<html>oops</html>"), id="html-200"),
        pytest.param(not_ok_reply(1009, "Invalid neosymbol"), id="not-ok-object"),
        pytest.param(json_reply([{"exchange": "nse_fo"}]), id="ltp-missing"),
        pytest.param(json_reply([], delay=600), id="timeout"),  # held until the fake stops
    ],
)
async def test_failing_quote_call_leaves_open_mtm_unknown_but_the_snapshot_good(reply):
    """When the quote call fails the poll still succeeds: open rows have no price and no MTM."""
    state = make_state()
    state.script("quotes", reply)
    async with live(state, total_timeout=2.0 if reply.delay else 30.0) as client:
        snapshot = await client.fetch()
        exchange = client.last_exchange

    assert list(snapshot.positions) == [FO, FLAT, CM]
    assert snapshot.positions[FO].net_qty == 25
    assert snapshot.positions[FO].ltp is None
    assert snapshot.positions[FO].mtm is None
    assert snapshot.positions[CM].mtm is None
    assert snapshot.positions[FLAT].mtm == Decimal("50.00")  # needs no price
    assert len(state.calls("quotes")) == 1
    assert exchange is not None
    assert exchange.status == 200
    assert exchange.quotes == {}


async def test_requests_never_exceed_ten_in_any_second():
    """Ten concurrent polls after login go out at most ten a second; the fake refuses none."""
    state = make_state()
    async with live(state) as client:
        await client.fetch()
        snapshots = await asyncio.gather(*(client.fetch() for _ in range(10)))

    assert all(s.positions[FO].mtm == Decimal("-2.625") for s in snapshots)
    assert len(state.requests) == 24  # 2 login + 11 * (positions + quotes)
    assert {r.status for r in state.requests} == {200}
    arrivals = [r.at for r in state.requests]
    # Any eleven consecutive requests span a second, less the arrival lag a busy machine adds.
    spans = [later - earlier for earlier, later in zip(arrivals, arrivals[10:], strict=False)]
    assert min(spans) >= 1.0 - RATE_SLACK


async def test_fake_refuses_an_eleventh_request_within_a_second():
    """Control for the limit test: the fake answers 429 to a burst beyond ten a second."""
    state = make_state()
    statuses = []
    async with serve(make_app(state)) as base, aiohttp.ClientSession() as session:
        target = URL(f"{base}{QUOTES_PREFIX}nse_fo|53179/ltp", encoded=True)
        for _ in range(11):
            async with session.get(target, headers={"Authorization": ACCESS_TOKEN}) as response:
                statuses.append(response.status)

    assert statuses == [200] * 10 + [429]


async def test_last_exchange_holds_the_positions_response_and_the_quotes_used():
    """last_exchange is the positions status and exact body plus the prices the MTM used."""
    state = make_state()
    async with live(state) as client:
        await client.fetch()
        exchange = client.last_exchange

    positions = state.calls("positions")[0]
    assert exchange is not None
    assert exchange.status == 200
    assert exchange.body == positions.reply
    assert exchange.quotes == {
        "nse_fo:53179": Decimal("101.2000"),
        "nse_cm:11536": Decimal("3248.3000"),
    }


async def test_access_token_and_mpin_travel_only_where_the_api_requires_them():
    """Across login, polls and a re-login, the access token is only in Authorization headers
    of login, validate and quotes; the MPIN only in the validate body; the TOTP secret nowhere."""
    state = make_state()
    async with live(state) as client:
        await client.fetch()
        state.expire_sessions()
        await client.fetch()

    assert set(endpoints(state)) == {"login", "validate", "positions", "quotes"}
    for request in state.requests:
        for name, value in request.headers.items():
            if ACCESS_TOKEN in value:
                assert name.lower() == "authorization", (request.endpoint, name)
                assert request.endpoint in {"login", "validate", "quotes"}
            assert MPIN not in value
            assert TOTP_SECRET not in value
        assert ACCESS_TOKEN not in request.path
        assert MPIN not in request.path
        assert ACCESS_TOKEN.encode() not in request.body
        assert TOTP_SECRET.encode() not in request.body
        if MPIN.encode() in request.body:
            assert request.endpoint == "validate"
            assert request.json() == {"mpin": MPIN}
        if request.endpoint in {"login", "validate", "quotes"}:
            assert request.headers["Authorization"] == ACCESS_TOKEN
    assert all("Authorization" not in r.headers for r in state.calls("positions"))
    assert len(state.calls("validate")) == 2


async def test_login_error_body_with_http_200_is_auth_expired_naming_the_step():
    """The login APIs may answer 200 with an error body: that is a refused login, not a crash."""
    state = make_state()
    refused = {"error": [{"code": "10522", "message": "Invalid totp"}]}
    state.script("login", json_reply(refused))
    async with live(state, SECRETS) as client:
        with pytest.raises(AuthExpired) as info:
            await client.fetch()

    assert endpoints(state) == ["login"]
    assert str(info.value).startswith("kotak_neo: tradeApiLogin: login refused (")
    assert_no_secret_leaks(SECRETS.values(), info.value)


async def test_a_rate_limited_quote_call_is_not_repeated_until_retry_after_passes():
    """429 on quotes: positions still come back; the next poll does not ask for quotes again."""
    state = make_state()
    state.script("quotes", json_reply({"stat": "Not_Ok"}, 429, **{"Retry-After": "30"}))
    async with live(state) as client:
        first = await client.fetch()
        second = await client.fetch()
    assert [p.mtm is None for p in first.positions.values()] == [True, False, True]
    assert endpoints(state).count("quotes") == 1
    assert [p.mtm for p in second.positions.values()] == [p.mtm for p in first.positions.values()]


async def test_one_token_under_two_products_is_quoted_once():
    """The same instrument held as NRML and MIS appears once in the quotes URL."""
    mis = dict(OPEN_FO, prod="MIS")
    state = make_state([dict(OPEN_FO), mis])
    async with live(state) as client:
        snapshot = await client.fetch()
    (quotes,) = [r for r in state.requests if r.endpoint == "quotes"]
    assert quotes.path.count("53179") == 1
    assert all(p.mtm is not None for p in snapshot.positions.values())


async def test_an_unchanged_positions_body_is_decoded_once_and_a_changed_one_again(monkeypatch):
    """Between trades every poll returns the same bytes: they are decoded once. A changed body
    is decoded anew, and a bad body in between leaves the last good decoding usable."""
    decoded: list[bytes] = []
    real_decode = kotak_neo.decode_rows

    def counting_decode(body: bytes, account: str, known: dict) -> tuple:
        decoded.append(body)
        return real_decode(body, account, known)

    monkeypatch.setattr(kotak_neo, "decode_rows", counting_decode)
    state = make_state()
    async with live(state) as client:
        first = await client.fetch()
        second = await client.fetch()
        assert len(decoded) == 1
        assert second.positions == first.positions

        state.rows[0]["flSellQty"] = "30"  # a trade: net 25 -> 15
        third = await client.fetch()
        assert len(decoded) == 2
        assert third.positions[FO].net_qty == 15

        state.script("positions", Reply(200, b'{"stat": "Ok", "data": [}'))
        with pytest.raises(BadResponse):
            await client.fetch()
        fourth = await client.fetch()

    assert len(decoded) == 3  # the bad body; the good one after it matched the last decoded
    assert fourth.positions == third.positions


async def test_positions_and_prices_repeated_byte_for_byte_give_back_the_last_rows():
    """Between trades and ticks a poll reads the very bytes of the last: it hands back the last
    poll's rows themselves (the diff then sees no change at a glance), and a trade keeps the
    rows it did not touch. A new price, a trade, or a quotes call that failed gives rows priced
    afresh, never the stale ones."""
    state = make_state()
    async with live(state) as client:
        first = await client.fetch()
        second = await client.fetch()
        assert second.positions is first.positions
        assert second.taken_at >= first.taken_at

        state.ltps = {**LTPS, "nse_fo|53179": "102.2000"}  # a tick: the FO row's MTM moves
        ticked = await client.fetch()
        assert ticked.positions is not second.positions
        assert ticked.positions[FO].ltp == Decimal("102.2000")
        assert ticked.positions[FO].mtm != first.positions[FO].mtm
        assert ticked.positions[CM] == first.positions[CM]

        state.script("quotes", not_ok_reply(500, "Unexpected error", 500))
        failed = await client.fetch()
        assert failed.positions[FO].mtm is None

        recovered = await client.fetch()  # the same bytes as the ticked poll's
        assert recovered.positions[FO].mtm == ticked.positions[FO].mtm
        assert recovered.positions is not failed.positions

        state.rows[0]["flSellQty"] = "30"  # a trade: net 25 -> 15, same prices
        traded = await client.fetch()
        assert traded.positions[FO].net_qty == 15
        assert traded.positions[CM] is recovered.positions[CM]  # its row and price repeat

    assert len(state.calls("quotes")) == 6


async def test_without_a_recorder_no_exchange_is_kept():
    """Outside ``run --record`` the client keeps no body: nothing would read it."""
    async with live(make_state(), recording=False) as client:
        snapshot = await client.fetch()

    assert list(snapshot.positions) == [FO, FLAT, CM]
    assert client.last_exchange is None


async def test_a_quote_past_the_price_bound_leaves_its_batch_unpriced():
    """A last price of 1e999999 is not a price: the positions stand, their MTM unknown, rather
    than the poll failing on an MTM no account can have."""
    state = make_state()
    state.ltps = {**LTPS, "nse_fo|53179": "1e999999"}
    async with live(state) as client:
        snapshot = await client.fetch()

    assert endpoints(state) == ["login", "validate", "positions", "quotes"]
    assert [(p.ltp, p.mtm) for p in (snapshot.positions[FO], snapshot.positions[CM])] == [
        (None, None),
        (None, None),
    ]
    assert snapshot.positions[FLAT].mtm == Decimal("50.00")
