"""Portfolio live client against the local fake: the seed's request, its answers and every fault."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from monitor.brokers import portfolio
from monitor.brokers.errors import (
    AuthExpired,
    BadResponse,
    BrokerError,
    BrokerUnavailable,
    RateLimited,
)
from monitor.brokers.transport import Exchange
from monitor.config import ConfigError, load
from monitor.model import PositionKey
from tests.brokers.live import connection
from tests.fakes import serve
from tests.fakes.portfolio import PortfolioState, failed, make_app
from tests.fakes.scripted import Reply, html_page, json_reply
from tests.snapshots import T0

TOKEN = "fake-portfolio-token-0123456789"  # not a real token
SECRETS = {"token": TOKEN}
RELIANCE = PositionKey("acct", "nse_cm", "11536", "")
RENEW = "renew the API token and restart"


@asynccontextmanager
async def live(
    state: PortfolioState | None = None, *, prefix: str = "", **options: Any
) -> AsyncIterator[tuple[PortfolioState, portfolio.Client]]:
    """The fake (serving ``state``) and a real Client pointed at it."""
    state = state or PortfolioState(token=TOKEN)
    async with (
        serve(make_app(state, prefix)) as base,
        connection(base + prefix, SECRETS, **options) as conn,
    ):
        yield state, portfolio.Client(conn)


async def test_request_is_the_seeds_post():
    """One POST to the seed's path with the raw token, a JSON content type and {"Source":"N"}."""
    async with live() as (state, client):
        await client.fetch()

    assert len(state.requests) == 1
    request = state.requests[0]
    assert request.method == "POST"
    assert request.path == "/Portfolio/1.0/portfolio/v1/positions"
    assert request.headers["Authorization"] == TOKEN  # no "Bearer" scheme
    assert request.headers["Content-Type"] == "application/json"
    assert request.json() == {"Source": "N"}


async def test_base_url_with_a_path_and_trailing_slash():
    """An account's base URL may carry a path: the positions path goes under it, slash-joined."""
    async with live(prefix="/gateway/") as (state, client):
        snapshot = await client.fetch()

    assert [request.path for request in state.requests] == [
        "/gateway/Portfolio/1.0/portfolio/v1/positions"
    ]
    assert list(snapshot.positions) == [RELIANCE]


async def test_seed_sample_becomes_the_expected_snapshot():
    """The seed's RELIANCE row: net 10, mtm = pnl 145.00, its own ltp; taken_at from the clock."""
    async with live() as (_, client):
        snapshot = await client.fetch()

    assert snapshot.account == "acct"
    assert snapshot.broker == "portfolio"
    assert snapshot.taken_at == T0
    assert list(snapshot.positions) == [RELIANCE]
    position = snapshot.positions[RELIANCE]
    assert position.symbol == "RELIANCE-EQ"
    assert position.net_qty == Decimal("10")
    assert position.mtm == Decimal("145.00")
    assert position.ltp == Decimal("2465.00")
    assert position.avg_price == Decimal("2450.50")


async def test_every_poll_reads_the_current_rows():
    """A second poll sees the fake's new rows: the client keeps no stale positions."""
    async with live() as (state, client):
        await client.fetch()
        state.rows[0].update(netQty="-5", pnl="-72.50")
        snapshot = await client.fetch()

    assert snapshot.positions[RELIANCE].net_qty == Decimal("-5")
    assert snapshot.positions[RELIANCE].mtm == Decimal("-72.50")
    assert len(state.requests) == 2


async def test_a_token_the_server_does_not_accept_is_auth_expired_once():
    """The fake refuses a revoked token with its 401: renew message, one request, no retry."""
    async with live(PortfolioState(token="a-different-token")) as (state, client):
        with pytest.raises(AuthExpired) as info:
            await client.fetch()

    assert str(info.value) == f"portfolio: token rejected (HTTP 401): {RENEW}"
    assert info.value.status == 401
    assert len(state.requests) == 1


@pytest.mark.parametrize("status", [401, 403])
async def test_401_and_403_are_auth_expired_without_retry(status):
    """The seed's 401/403 answers say to renew the token; exactly one request is made."""
    async with live() as (state, client):
        state.faults.append(failed(status))
        with pytest.raises(AuthExpired) as info:
            await client.fetch()

    assert str(info.value) == f"portfolio: token rejected (HTTP {status}): {RENEW}"
    assert info.value.status == status
    assert len(state.requests) == 1


@pytest.mark.parametrize(
    ("status", "message"), [(401, "Invalid or expired token"), (403, "Insufficient privileges")]
)
async def test_failed_envelope_with_http_200_is_auth_expired(status, message):
    """A Status Failed envelope with errorCode 401/403 under HTTP 200 also says to renew."""
    async with live() as (state, client):
        state.faults.append(failed(status, http_status=200))
        with pytest.raises(AuthExpired) as info:
            await client.fetch()

    assert str(info.value) == (
        f"portfolio: token rejected (Status Failed, errorCode {status}: {message}): {RENEW}"
    )
    assert len(state.requests) == 1


async def test_failed_envelope_500_with_http_200_is_bad_response():
    """The seed's errorCode 500 envelope under HTTP 200 is a BadResponse quoting the broker."""
    async with live() as (state, client):
        state.faults.append(failed(500, http_status=200))
        with pytest.raises(BadResponse) as info:
            await client.fetch()

    assert type(info.value) is BadResponse
    assert str(info.value) == "portfolio: Status Failed, errorCode 500: Internal server error"


async def test_429_carries_retry_after():
    """A 429 with Retry-After: 7 is RateLimited(retry_after=7.0), not retried by the client."""
    async with live() as (state, client):
        state.faults.append(json_reply({"Status": "Failed"}, 429, **{"Retry-After": "7"}))
        with pytest.raises(RateLimited) as info:
            await client.fetch()

    assert info.value.retry_after == 7.0
    assert info.value.status == 429
    assert len(state.requests) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_broker_unavailable(status):
    """5xx answers (the seed's 500 envelope among them) are BrokerUnavailable, one request each."""
    async with live() as (state, client):
        state.faults.append(failed(status, "Internal server error"))
        with pytest.raises(BrokerUnavailable) as info:
            await client.fetch()

    assert str(info.value) == f"portfolio: HTTP {status}: broker unavailable"
    assert info.value.status == status
    assert len(state.requests) == 1


async def test_slow_answer_is_unavailable_at_the_timeout():
    """An answer held until the fake shuts down is BrokerUnavailable: the client gave up at its
    total timeout (2 s) after the request reached the fake."""
    async with live(total_timeout=2.0) as (state, client):
        state.faults.append(Reply(200, state.body(), delay=600))  # held until the fake stops
        with pytest.raises(BrokerUnavailable) as info:
            await client.fetch()

    assert str(info.value) == "portfolio: 127.0.0.1: timed out"
    assert len(state.requests) == 1
    assert client.last_exchange is None


INVALID = "body: not valid JSON"
MALFORMED = [
    pytest.param(lambda _: Reply(200, b'{"Status": "Success", "data": ['), INVALID, id="json"),
    pytest.param(lambda body: Reply(200, body[: len(body) // 2]), INVALID, id="truncated"),
    pytest.param(lambda _: html_page(200), INVALID, id="html"),
]


@pytest.mark.parametrize(("make_reply", "fragment"), MALFORMED)
async def test_malformed_bodies_are_bad_response(make_reply, fragment):
    """Broken JSON, a body cut in half and an HTML page are BadResponses naming the broker."""
    async with live() as (state, client):
        state.faults.append(make_reply(state.body()))
        with pytest.raises(BadResponse) as info:
            await client.fetch()

    assert type(info.value) is BadResponse
    assert str(info.value).startswith(f"portfolio: {fragment}")


async def test_body_over_the_cap_is_bad_response():
    """The normal answer over a 64-byte max_body is a BadResponse, not a partial parse."""
    async with live(max_body=64) as (_, client):
        with pytest.raises(BadResponse) as info:
            await client.fetch()

    assert str(info.value) == "portfolio: 127.0.0.1: body larger than 64 bytes"
    assert info.value.status == 200


FAULTS = [
    pytest.param(failed(401), id="401"),
    pytest.param(failed(403), id="403"),
    pytest.param(failed(401, http_status=200), id="envelope-401"),
    pytest.param(failed(500, http_status=200), id="envelope-500"),
    pytest.param(json_reply({}, 429, **{"Retry-After": "3"}), id="429"),
    pytest.param(failed(503), id="503"),
    pytest.param(html_page(200), id="html"),
    pytest.param(json_reply({}, 404), id="404"),
    pytest.param(Reply(200, b"{}", delay=600), id="timeout"),  # held until the fake stops
]


@pytest.mark.parametrize("reply", FAULTS)
async def test_the_token_never_appears_in_an_error(reply):
    """No failure's message, repr or cause chain contains the token value."""
    async with live(total_timeout=2.0) as (state, client):
        state.faults.append(reply)
        with pytest.raises(BrokerError) as info:
            await client.fetch()

    error: BaseException | None = info.value
    while error is not None:
        assert TOKEN not in str(error)
        assert TOKEN not in repr(error)
        error = error.__cause__ or error.__context__


async def test_last_exchange_is_what_came_off_the_wire():
    """Set to the raw answer before parsing (success and failure); cleared when nothing came."""
    async with live(total_timeout=2.0) as (state, client):
        assert client.last_exchange is None
        await client.fetch()
        assert client.last_exchange == Exchange(200, state.body(), {})

        error = failed(503)
        state.faults.append(error)
        with pytest.raises(BrokerUnavailable):
            await client.fetch()
        assert client.last_exchange == Exchange(503, error.body, {})

        state.faults.append(Reply(200, state.body(), delay=600))
        with pytest.raises(BrokerUnavailable):
            await client.fetch()
        assert client.last_exchange is None


async def test_next_poll_after_a_failure_succeeds():
    """A failed poll leaves nothing broken: the next poll is one normal request."""
    async with live() as (state, client):
        state.faults.append(failed(502))
        with pytest.raises(BrokerUnavailable):
            await client.fetch()
        snapshot = await client.fetch()

    assert list(snapshot.positions) == [RELIANCE]
    assert len(state.requests) == 2


def test_account_must_name_its_base_url(tmp_path: Path):
    """BASE_URL is None: an account without base_url is refused; with one it is kept."""
    path = tmp_path / "rules.yaml"
    account = (
        "accounts:\n  - id: p1\n    broker: portfolio\n"
        '    credentials: {token: "${PORTFOLIO_TOKEN}"}\n'
    )
    rules = "rules:\n  - name: r\n    kind: new_short\n"
    path.write_text(account + rules)
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.problems == [
        f"{path}: account 'p1': base_url: required: an http(s) URL (line 2)"
    ]

    path.write_text(account + "    base_url: https://api.example.test/\n" + rules)
    (loaded,) = load(path).accounts
    assert loaded.base_url == "https://api.example.test/"
    assert dict(loaded.credentials) == {"token": "${PORTFOLIO_TOKEN}"}
