"""The shared transport: whole bodies however they arrive, the size cap, Retry-After."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from aiohttp import web

from monitor.brokers.errors import BadResponse
from monitor.brokers.transport import RateLimiter, parse_retry_after
from tests.brokers.live import connection
from tests.fakes import serve

BIG = b'{"data": "' + b"x" * 3_000_000 + b'"}'


def app() -> web.Application:
    async def whole(request: web.Request) -> web.Response:
        return web.Response(body=BIG, content_type="application/json")

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(BIG), 1024):
            await response.write(BIG[start : start + 1024])
        await response.write_eof()
        return response

    application = web.Application()
    application.router.add_get("/whole", whole)
    application.router.add_get("/chunked", chunked)
    return application


@pytest.mark.parametrize("path", ["/whole", "/chunked"])
async def test_a_large_body_is_read_whole(path: str) -> None:
    """A 3 MB body, sent at once or in 1 KB chunks, arrives complete."""
    async with serve(app()) as base, connection(base, {}) as conn:
        response = await conn.call("test", "GET", conn.url(path), headers={})
    assert response.body == BIG


@pytest.mark.parametrize("path", ["/whole", "/chunked"])
async def test_a_body_over_the_cap_is_a_bad_response(path: str) -> None:
    """Past the cap the read stops and the poll fails, naming the host and the limit."""
    async with serve(app()) as base, connection(base, {}, max_body=1_000_000) as conn:
        with pytest.raises(BadResponse) as info:
            await conn.call("test", "GET", conn.url(path), headers={})
    assert str(info.value) == "test: 127.0.0.1: body larger than 1000000 bytes"


def test_retry_after_forms() -> None:
    """Seconds, an HTTP date, and nonsense (including non-ASCII digits) read as None."""
    now = datetime(2026, 11, 23, 9, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Mon, 23 Nov 2026 09:00:30 GMT", now) == 30.0
    assert parse_retry_after("Mon, 23 Nov 2026 08:00:00 GMT", now) == 0.0
    assert parse_retry_after("²") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


async def test_a_header_aiohttp_refuses_is_a_bad_response_without_its_value() -> None:
    """A token with a line break (say, from a broker's login answer) fails the poll cleanly."""
    async with serve(app()) as base, connection(base, {}) as conn:
        with pytest.raises(BadResponse) as info:
            await conn.call("test", "GET", conn.url("/whole"), headers={"Auth": "tok\nen-123"})
    assert str(info.value) == "test: 127.0.0.1: request not sent: ValueError"


async def test_rate_limiter_lets_a_poll_through_at_once_and_holds_a_burst_to_the_window() -> None:
    """At most 3 in any window: the first 3 go straight away while a fourth waits for the
    window, and no 0.2 s window ever holds a fourth."""
    hourly = RateLimiter(3, 3600)
    async with asyncio.timeout(60):  # a poll's few requests are not spaced out (an hour each)
        for _ in range(3):
            await hourly.wait()
    fourth = asyncio.create_task(hourly.wait())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not fourth.done(), "a fourth request went out inside the window"
    fourth.cancel()

    limiter = RateLimiter(3, 0.2)
    spans = []  # (asked, let through) of each request
    for _ in range(9):
        asked = time.monotonic()
        await limiter.wait()
        spans.append((asked, time.monotonic()))
    # From asking for one request to the third after it going out is a whole window at least;
    # measured around the limiter, so a slow machine only makes it longer.
    for (asked, _), (_, let_through) in zip(spans, spans[3:], strict=False):
        assert let_through - asked >= 0.2 - 1e-3
