"""Imitates the Portfolio positions API (seed: portfolio-positions-api.md, its only public doc).

``POST <Base_URL>/Portfolio/1.0/portfolio/v1/positions`` with ``Authorization: <token>`` (the raw
token), ``Content-Type: application/json`` and the body ``{"Source": "N"}``. Numbers are decimal
strings; every answer, error or not, is the ``Status``/``message``/``errorCode`` envelope, and the
seed's error bodies are served with the matching HTTP status (401, 403, 500).
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

PATH = "/Portfolio/1.0/portfolio/v1/positions"
REQUEST = {"Source": "N"}
_SEED = Path(__file__).parent.parent / "brokers" / "fixtures" / "portfolio" / "positions.json"
SEED_ROWS: list[dict[str, Any]] = json.loads(_SEED.read_bytes())["data"]

# The seed's error bodies, by HTTP status.
SEED_ERRORS = {
    401: "Invalid or expired token",
    403: "Insufficient privileges",
    500: "Internal server error",
}


def failed(status: int, message: str | None = None, *, http_status: int | None = None) -> Reply:
    """The seed's ``Status: Failed`` envelope with ``errorCode`` ``status``.

    The seed serves it with the same HTTP status; ``http_status=200`` scripts a gateway that
    wraps the error in a 200 (unknown whether the real one does: the parser must cope anyway).
    """
    document = {
        "Status": "Failed",
        "message": SEED_ERRORS.get(status, "") if message is None else message,
        "errorCode": str(status),
    }
    return json_reply(document, status if http_status is None else http_status)


@dataclass
class PortfolioState:
    """The fake's account: the token it accepts, the rows it serves, scripted faults, requests."""

    token: str
    rows: list[dict[str, Any]] = field(default_factory=lambda: copy.deepcopy(SEED_ROWS))
    faults: deque[Reply] = field(default_factory=deque)
    requests: list[Received] = field(default_factory=list)

    def body(self) -> bytes:
        """The success body for the current rows, as the handler serves it."""
        document = {"Status": "Success", "message": "", "errorCode": "", "data": self.rows}
        return json.dumps(document).encode()


def make_app(state: PortfolioState, prefix: str = "") -> web.Application:
    """The positions endpoint under ``prefix`` (an account's base URL may carry a path)."""
    app = web.Application()
    released = released_at_shutdown(app)  # slow scripted replies end with the test

    async def positions(request: web.Request) -> web.Response:
        received = await record(request, state.requests)
        if (scripted := await play(state.faults, released)) is not None:
            return scripted
        if received.headers.get("Authorization") != state.token:
            return await send(failed(401))
        # Unknown: what the real server answers to a wrong content type or body. A 400 with the
        # Failed envelope is a guess; the client never sends either.
        if request.content_type != "application/json" or json_or_none(received.body) != REQUEST:
            return await send(failed(400, "Invalid request"))
        return await send(Reply(200, state.body()))

    app.router.add_post(prefix.rstrip("/") + PATH, positions)
    return app
