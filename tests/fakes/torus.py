"""Imitates Torus Digital's net-position API (seed: torus-netposition.md).

``POST https://connects.torusdigital.com/api/v1/holdings/netposition`` with
``Authorization: Bearer <token>``, ``Content-Type: application/json`` and the body
``{"source": "M", "data": {"interop_flag": "IP"}}``. Numbers are JSON numbers. The seed's sample
ends in ``],\\n}`` (a trailing comma, not valid JSON); this fake serves the same document as
valid JSON.

Unknown from the public docs, so guessed here: the bodies of error answers (the seed shows only a
200). Errors are served as ``{"status": "error", "message": ...}``.
"""

from __future__ import annotations

import copy
import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.fakes.scripted import (
    Received,
    Reply,
    json_or_none,
    json_reply,
    play,
    record,
    released_at_shutdown,
    send,
)

PATH = "/api/v1/holdings/netposition"
REQUEST = {"source": "M", "data": {"interop_flag": "IP"}}
_SEED = Path(__file__).parent.parent / "brokers" / "fixtures" / "torus" / "netposition.json"
SEED_ROWS: list[dict[str, Any]] = json.loads(_SEED.read_bytes())["data"]


def failed(status: int, message: str, *, http_status: int | None = None) -> Reply:
    """A non-success envelope (its shape is a guess: see the module docstring)."""
    document = {"status": "error", "message": message, "data": []}
    return json_reply(document, status if http_status is None else http_status)


@dataclass
class TorusState:
    """The fake's account: the token it accepts, the rows it serves, scripted faults, requests."""

    token: str
    rows: list[dict[str, Any]] = field(default_factory=lambda: copy.deepcopy(SEED_ROWS))
    faults: deque[Reply] = field(default_factory=deque)
    requests: list[Received] = field(default_factory=list)

    def body(self) -> bytes:
        """The success body for the current rows, as the handler serves it."""
        document = {"status": "success", "message": "Success", "data": self.rows}
        return json.dumps(document).encode()


def make_app(state: TorusState) -> web.Application:
    """The net-position endpoint."""
    app = web.Application()
    released = released_at_shutdown(app)  # slow scripted replies end with the test

    async def netposition(request: web.Request) -> web.Response:
        received = await record(request, state.requests)
        if (scripted := await play(state.faults, released)) is not None:
            return scripted
        if received.headers.get("Authorization") != f"Bearer {state.token}":
            return await send(failed(401, "Unauthorized"))
        if request.content_type != "application/json" or json_or_none(received.body) != REQUEST:
            return await send(failed(400, "Invalid request"))  # a guess, like every error body
        return await send(Reply(200, state.body()))

    app.router.add_post(PATH, netposition)
    return app
