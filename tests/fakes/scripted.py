"""What the fake brokers share: every request recorded, and replies a test can script ahead.

A fake serves its broker's normal behaviour unless a test queued a ``Reply`` (a status, a body,
headers, a delay); queued replies are served first, one per request, in order.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy


@dataclass(frozen=True, slots=True)
class Received:
    """One request as the fake saw it."""

    method: str
    path: str
    headers: CIMultiDictProxy[str]  # case-insensitive, as on the wire
    body: bytes
    at: float  # time.monotonic() on arrival

    def json(self) -> object:
        """The body decoded as JSON."""
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class Reply:
    """A scripted answer."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering


def json_reply(document: object, status: int = 200, **headers: str) -> Reply:
    """``document`` as a JSON body."""
    return Reply(status, json.dumps(document).encode(), headers=headers)


def html_page(status: int = 200) -> Reply:
    """The HTML error page a proxy or gateway serves instead of the API's JSON."""
    page = b"<html><head><title>Service Unavailable</title></head><body>try later</body></html>"
    return Reply(status, page, "text/html; charset=utf-8")


async def record(request: web.Request, into: list[Received]) -> Received:
    """Append ``request`` (headers and full body) to ``into``."""
    received = Received(
        request.method,
        request.path,
        CIMultiDictProxy(CIMultiDict(request.headers)),
        await request.read(),
        time.monotonic(),
    )
    into.append(received)
    return received


async def send(reply: Reply) -> web.Response:
    """Serve a scripted reply, after its delay."""
    if reply.delay:
        await asyncio.sleep(reply.delay)
    headers = {"Content-Type": reply.content_type, **reply.headers}
    return web.Response(status=reply.status, body=reply.body, headers=headers)
