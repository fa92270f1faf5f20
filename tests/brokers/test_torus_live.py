"""Torus live client against the local fake: the seed's request, its answers and every fault."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from monitor.brokers import torus
from monitor.brokers.errors import (
    AuthExpired,
    BadResponse,
    BrokerError,
    BrokerUnavailable,
    RateLimited,
)
from monitor.brokers.transport import Exchange
from monitor.config import load
from monitor.model import PositionKey
from tests.brokers.live import connection
from tests.fakes import serve
from tests.fakes.scripted import Reply, html_page, json_reply
from tests.fakes.torus import TorusState, failed, make_app
from tests.snapshots import T0

VERBATIM_SEED = (
    Path(__file__).parent / "fixtures" / "torus" / "netposition-seed-verbatim.json"
).read_bytes()

TOKEN = "fake-torus-jwt.0123456789"  # not a real token
SECRETS = {"token": TOKEN}
RELIANCE = PositionKey("acct", "BSE_E", "500325", "C")
RENEW = "renew the Torus access token (browser login) and restart"


@asynccontextmanager
async def live(
    state: TorusState | None = None, **options: Any
) -> AsyncIterator[tuple[TorusState, torus.Client]]:
    """The fake (serving ``state``) and a real Client pointed at it."""
    state = state or TorusState(token=TOKEN)
    async with serve(make_app(state)) as base, connection(base, SECRETS, **options) as conn:
        yield state, torus.Client(conn)


async def test_request_is_the_seeds_post():
    """One POST to the seed's path with the Bearer token, JSON headers and the seed's body."""
    async with live() as (state, client):
        await client.fetch()

    assert len(state.requests) == 1
    request = state.requests[0]
    assert request.method == "POST"
    assert request.path == "/api/v1/holdings/netposition"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"
    assert request.json() == {"source": "M", "data": {"interop_flag": "IP"}}


async def test_seed_sample_becomes_the_expected_snapshot():
    """The seed's RELIANCE short: net -1, mtm 0 + 0, avg sell 2600; taken_at from the clock."""
    async with live() as (_, client):
        snapshot = await client.fetch()

    assert snapshot.account == "acct"
    assert snapshot.broker == "torus"
    assert snapshot.taken_at == T0
    assert list(snapshot.positions) == [RELIANCE]
    position = snapshot.positions[RELIANCE]
    assert position.symbol == "RELIANCE"
    assert position.net_qty == -1
    assert position.mtm == 0
    assert position.realized == 0
    assert position.unrealized == 0
    assert position.ltp == 0
    assert position.avg_price == Decimal("2600")


async def test_every_poll_reads_the_current_rows():
    """A second poll sees the fake's new rows: the client keeps no stale positions."""
    async with live() as (state, client):
        await client.fetch()
        state.rows[0].update(net_qty=-3, realised_profit=1250.5, mtm=-300.25)
        snapshot = await client.fetch()

    assert snapshot.positions[RELIANCE].net_qty == -3
    # mtm = realised_profit 1250.5 + mtm -300.25 = 950.25, exact from the JSON numbers
    assert snapshot.positions[RELIANCE].mtm == Decimal("950.25")
    assert len(state.requests) == 2


async def test_a_token_the_server_does_not_accept_is_auth_expired_once():
    """The fake refuses a revoked token with its 401: renew message, one request, no retry."""
    async with live(TorusState(token="a-different-token")) as (state, client):
        with pytest.raises(AuthExpired) as info:
            await client.fetch()

    assert str(info.value) == f"torus: token rejected (HTTP 401): {RENEW}"
    assert info.value.status == 401
    assert len(state.requests) == 1


@pytest.mark.parametrize("status", [401, 403])
async def test_401_and_403_are_auth_expired_without_retry(status):
    """401/403 say to renew the token (no re-login: it needs a browser); one request is made."""
    async with live() as (state, client):
        state.faults.append(failed(status, "Unauthorized"))
        with pytest.raises(AuthExpired) as info:
            await client.fetch()

    assert str(info.value) == f"torus: token rejected (HTTP {status}): {RENEW}"
    assert info.value.status == status
    assert len(state.requests) == 1


async def test_non_success_status_with_http_200_is_bad_response():
    """A 200 whose envelope says status "error" is a BadResponse quoting the broker's message."""
    async with live() as (state, client):
        state.faults.append(failed(200, "Unable to fetch net positions"))
        with pytest.raises(BadResponse) as info:
            await client.fetch()

    assert type(info.value) is BadResponse
    assert str(info.value) == "torus: status error: Unable to fetch net positions"
    assert len(state.requests) == 1


async def test_429_carries_retry_after():
    """A 429 with Retry-After: 7 is RateLimited(retry_after=7.0), not retried by the client."""
    async with live() as (state, client):
        state.faults.append(json_reply({"status": "error"}, 429, **{"Retry-After": "7"}))
        with pytest.raises(RateLimited) as info:
            await client.fetch()

    assert info.value.retry_after == 7.0
    assert info.value.status == 429
    assert len(state.requests) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_broker_unavailable(status):
    """5xx answers are BrokerUnavailable, one request each."""
    async with live() as (state, client):
        state.faults.append(failed(status, "Internal server error"))
        with pytest.raises(BrokerUnavailable) as info:
            await client.fetch()

    assert str(info.value) == f"torus: HTTP {status}: broker unavailable"
    assert info.value.status == status
    assert len(state.requests) == 1


async def test_slow_answer_is_unavailable_at_the_timeout():
    """An answer held until the fake shuts down is BrokerUnavailable: the client gave up at its
    total timeout (2 s) after the request reached the fake."""
    async with live(total_timeout=2.0) as (state, client):
        state.faults.append(Reply(200, state.body(), delay=600))  # held until the fake stops
        with pytest.raises(BrokerUnavailable) as info:
            await client.fetch()

    assert str(info.value) == "torus: 127.0.0.1: timed out"
    assert len(state.requests) == 1
    assert client.last_exchange is None


INVALID = "body: not valid JSON"
MALFORMED = [
    pytest.param(lambda _: Reply(200, b'{"status": "success", "data": [}'), INVALID, id="json"),
    pytest.param(lambda _: Reply(200, VERBATIM_SEED), INVALID, id="seed-trailing-comma"),
    pytest.param(lambda body: Reply(200, body[: len(body) // 2]), INVALID, id="truncated"),
    pytest.param(lambda _: html_page(200), INVALID, id="html"),
]


@pytest.mark.parametrize(("make_reply", "fragment"), MALFORMED)
async def test_malformed_bodies_are_bad_response(make_reply, fragment):
    """Broken JSON (the seed's own trailing comma too), a cut body and an HTML page: BadResponse."""
    async with live() as (state, client):
        state.faults.append(make_reply(state.body()))
        with pytest.raises(BadResponse) as info:
            await client.fetch()

    assert type(info.value) is BadResponse
    assert str(info.value).startswith(f"torus: {fragment}")


async def test_body_over_the_cap_is_bad_response():
    """The normal answer over a 64-byte max_body is a BadResponse, not a partial parse."""
    async with live(max_body=64) as (_, client):
        with pytest.raises(BadResponse) as info:
            await client.fetch()

    assert str(info.value) == "torus: 127.0.0.1: body larger than 64 bytes"
    assert info.value.status == 200


FAULTS = [
    pytest.param(failed(401, "Unauthorized"), id="401"),
    pytest.param(failed(403, "Forbidden"), id="403"),
    pytest.param(failed(200, "Unable to fetch net positions"), id="envelope-error"),
    pytest.param(json_reply({}, 429, **{"Retry-After": "3"}), id="429"),
    pytest.param(failed(503, "Service Unavailable"), id="503"),
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

        error = failed(503, "Service Unavailable")
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
        state.faults.append(failed(502, "Bad Gateway"))
        with pytest.raises(BrokerUnavailable):
            await client.fetch()
        snapshot = await client.fetch()

    assert list(snapshot.positions) == [RELIANCE]
    assert len(state.requests) == 2


def test_account_defaults_to_the_seeds_base_url(tmp_path: Path):
    """An account without base_url polls connects.torusdigital.com; one token credential."""
    path = tmp_path / "rules.yaml"
    path.write_text(
        "accounts:\n  - id: t1\n    broker: torus\n"
        '    credentials: {token: "${TORUS_TOKEN}"}\n'
        "rules:\n  - name: r\n    kind: new_short\n"
    )
    (loaded,) = load(path).accounts
    assert loaded.base_url == "https://connects.torusdigital.com"
    assert dict(loaded.credentials) == {"token": "${TORUS_TOKEN}"}
