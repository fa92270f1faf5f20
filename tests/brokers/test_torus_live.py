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
    BadResponse,
    BrokerUnavailable,
)
from monitor.brokers.transport import Exchange
from monitor.config import load
from monitor.model import PositionKey
from tests.brokers.live import connection
from tests.fakes import serve
from tests.fakes.scripted import Reply
from tests.fakes.torus import TorusState, failed, make_app
from tests.snapshots import T0

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


async def test_non_success_status_with_http_200_is_bad_response():
    """A 200 whose envelope says status "error" is a BadResponse quoting the broker's message."""
    async with live() as (state, client):
        state.faults.append(failed(200, "Unable to fetch net positions"))
        with pytest.raises(BadResponse) as info:
            await client.fetch()

    assert type(info.value) is BadResponse
    assert str(info.value) == "torus: status error: Unable to fetch net positions"
    assert len(state.requests) == 1


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
