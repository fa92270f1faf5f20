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
    BrokerUnavailable,
)
from monitor.brokers.transport import Exchange
from monitor.config import ConfigError, load
from monitor.model import PositionKey
from tests.brokers.live import connection
from tests.fakes import serve
from tests.fakes.portfolio import PortfolioState, failed, make_app
from tests.fakes.scripted import Reply
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
