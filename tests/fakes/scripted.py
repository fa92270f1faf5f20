"""What the fake brokers share: every request recorded, and replies a test can script ahead.

A fake serves its broker's normal behaviour unless a test queued a ``Reply`` (a status, a body,
headers, a delay); queued replies are served first, one per request, in order. A reply without a
body of its own only slows the fake down: after its delay, a 200 gets the normal answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy


@dataclass(slots=True)
class Received:
    """One request as the fake saw it, and what it answered where the fake notes that."""

    method: str
    path: str  # the raw path, exactly as sent on the wire (not percent-decoded)
    query: MultiDictProxy[str]  # every parameter, repeats kept
    headers: CIMultiDictProxy[str]  # case-insensitive, as on the wire
    body: bytes
    at: float  # time.monotonic() on arrival
    endpoint: str = ""  # the fake's name for what was called; "" for a one-endpoint fake
    status: int = 0  # the status answered; 0 where the fake does not note it
    reply: bytes = b""  # the body answered, where the fake notes it

    def json(self) -> object:
        """The request body decoded as JSON."""
        return json.loads(self.body)

    def reply_json(self) -> object:
        """The response body decoded as JSON."""
        return json.loads(self.reply)


@dataclass(frozen=True, slots=True)
class Reply:
    """A scripted answer: after ``delay`` s, ``status`` with ``body`` as ``content_type``.

    A body of None is no body of the reply's own: a 200 then gets the fake's normal answer (the
    reply only delays it), any other status an empty body.
    """

    status: int = 200
    body: bytes | None = None
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering


def json_reply(document: object, status: int = 200, *, delay: float = 0.0, **headers: str) -> Reply:
    """``document`` as a JSON body."""
    return Reply(status, json.dumps(document).encode(), headers=headers, delay=delay)


def html_page(status: int = 200) -> Reply:
    """The HTML error page a proxy or gateway serves instead of the API's JSON."""
    page = b"<html><head><title>Service Unavailable</title></head><body>try later</body></html>"
    return Reply(status, page, "text/html; charset=utf-8")


def json_or_none(body: bytes) -> object:
    """``body`` decoded as JSON; None if it is not JSON."""
    try:
        return json.loads(body)
    except ValueError:
        return None


async def record(request: web.Request, into: list[Received], endpoint: str = "") -> Received:
    """Append ``request`` (raw path, query, headers and full body) to ``into``."""
    received = Received(
        request.method,
        request.rel_url.raw_path,
        MultiDictProxy(MultiDict(request.query)),
        CIMultiDictProxy(CIMultiDict(request.headers)),
        await request.read(),
        time.monotonic(),
        endpoint,
    )
    into.append(received)
    return received


async def send(reply: Reply, released: asyncio.Event | None = None) -> web.Response:
    """Serve ``reply`` after its delay (cut short once ``released`` is set)."""
    await _wait(reply.delay, released)
    return _response(reply)


async def play(queue: deque[Reply], released: asyncio.Event | None = None) -> web.Response | None:
    """Serve the next reply in ``queue`` after its delay; None if the fake should answer itself."""
    if not queue:
        return None
    reply = queue.popleft()
    await _wait(reply.delay, released)
    if reply.body is None and reply.status == 200:
        return None  # only slow: the normal answer follows
    return _response(reply)


def released_at_shutdown(app: web.Application) -> asyncio.Event:
    """An event set when ``app`` shuts down, so that slow replies do not hold up the teardown."""
    released = asyncio.Event()

    async def release(_app: web.Application) -> None:
        released.set()

    app.on_shutdown.append(release)
    return released


async def _wait(delay: float, released: asyncio.Event | None) -> None:
    if not delay:
        return
    if released is None:
        await asyncio.sleep(delay)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(released.wait(), delay)


def _response(reply: Reply) -> web.Response:
    headers = {"Content-Type": reply.content_type, **reply.headers}
    return web.Response(status=reply.status, body=reply.body or b"", headers=headers)
