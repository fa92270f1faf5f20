"""Imitates the Telegram Bot API closely enough for python-telegram-bot to talk to it.

PTB posts form fields to ``{base_url}{token}/{method}`` (``Bot(token, base_url=.../bot)``) and
calls ``getMe`` first. Like the real API this fake answers ``{"ok": true, "result": ...}`` or
``{"ok": false, "error_code", "description"[, "parameters"]}``: 401 for a wrong token, 400
"chat not found" for a chat it does not know, 403 for a chat that blocked the bot, 400 for a
text over 4096 characters or with HTML it cannot parse. ``getUpdates`` long-polls the updates
a test queued. Tests script faults per method (429 with ``retry_after``, 500, slow answers) or
take the whole API down (connections reset) and bring it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from aiohttp import web

from tests.fakes.scripted import Reply, json_reply, play, released_at_shutdown

BOT_ID = 7000001
USERNAME = "pm_test_bot"
# Shaped like a real token (bot id, colon, 35 characters) so the redaction patterns apply.
TOKEN = f"{BOT_ID}:AAHfake-TOKEN_for_tests_0123456789ab"
_ENTITIES = frozenset({"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "code", "pre",
                       "a", "span", "tg-spoiler", "blockquote", "tg-emoji"})  # fmt: skip


@dataclass(slots=True)
class Sent:
    """One message the bot sent, as Telegram accepted it."""

    chat_id: str
    text: str
    parse_mode: str | None
    at: float  # the state's clock on arrival


@dataclass
class TelegramState:
    """The fake's world: known chats, what was sent, scripted faults, queued updates."""

    token: str = TOKEN
    chats: set[str] = field(default_factory=set)  # chats the bot may write to
    blocked: set[str] = field(default_factory=set)  # chats that answer 403
    sent: list[Sent] = field(default_factory=list)
    calls: list[tuple[str, float]] = field(default_factory=list)  # (method, time) of each call
    faults: dict[str, deque[Reply]] = field(default_factory=lambda: defaultdict(deque))
    down: bool = False  # every request's connection is reset
    updates: list[dict[str, Any]] = field(default_factory=list)
    clock: Callable[[], float] = time.monotonic  # what ``calls`` and ``sent`` are timed by
    confirmed: int = 0  # the highest offset getUpdates was called with
    _update_id: int = 100
    _new_update: asyncio.Event = field(default_factory=asyncio.Event)

    def texts(self, chat_id: str | None = None) -> list[str]:
        """The texts sent (to ``chat_id``), in order."""
        return [s.text for s in self.sent if chat_id is None or s.chat_id == chat_id]

    def fail(self, method: str, *replies: Reply) -> None:
        """Serve ``replies`` to the next calls of ``method``, one each."""
        self.faults[method].extend(replies)

    def command(
        self, chat_id: str, text: str, *, chat_type: str = "private", age: float = 0.0
    ) -> int:
        """Queue a message from ``chat_id``, sent ``age`` seconds ago, for getUpdates."""
        self._update_id += 1
        self.updates.append(
            {
                "update_id": self._update_id,
                "message": {
                    "message_id": self._update_id,
                    "date": int(time.time() - age),
                    "chat": {"id": int(chat_id), "type": chat_type},
                    "from": {"id": 42, "is_bot": False, "first_name": "Trader"},
                    "text": text,
                },
            }
        )
        self._new_update.set()
        return self._update_id


def retry_after(seconds: int) -> Reply:
    """Telegram's flood-control answer."""
    return error(429, f"Too Many Requests: retry after {seconds}", retry_after=seconds)


def error(code: int, description: str, **parameters: int) -> Reply:
    """A Bot API error envelope."""
    document: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        document["parameters"] = parameters
    return json_reply(document, code)


_ENTITY = re.compile(r"&(lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")
_TAG = re.compile(r"</?([a-z-]+)(\s[^<>]*)?>")


class _EntityCheck(HTMLParser):
    """Rejects what Telegram's HTML parse mode rejects: unknown tags, unbalanced tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.problem = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _ENTITIES:
            self.problem = f'unsupported start tag "{tag}"'
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open.pop() != tag:
            self.problem = f'unexpected end tag "{tag}"'


def _parse_problem(text: str) -> str:
    """Why Telegram's HTML parser would refuse ``text``; "" when it would accept it."""
    for match in re.finditer(r"[<&]", text):
        rest = text[match.start() :]
        if match[0] == "&" and not _ENTITY.match(rest):
            return f"can't parse character entity at byte offset {match.start()}"
        if match[0] == "<" and not _TAG.match(rest):
            return f"unsupported start tag at byte offset {match.start()}"
    check = _EntityCheck()
    check.feed(text)
    check.close()
    if check.open:
        return f'can\'t find end tag corresponding to start tag "{check.open[-1]}"'
    return check.problem


def make_app(state: TelegramState) -> web.Application:
    """The fake Bot API as an aiohttp application."""
    app = web.Application()
    released = released_at_shutdown(app)  # slow scripted replies end with the test

    async def handle(request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        state.calls.append((method, state.clock()))
        if state.down:
            assert request.transport is not None
            request.transport.close()  # as if the API were unreachable
            return web.Response()
        if request.match_info["token"] != state.token:
            return _answer(error(401, "Unauthorized"))
        scripted = await play(state.faults[method], released)
        if scripted is not None:
            return scripted
        form = await request.post()
        fields = {k: str(v) for k, v in form.items()}
        if method == "getMe":
            return _ok({"id": BOT_ID, "is_bot": True, "first_name": "PM", "username": USERNAME,
                        "can_join_groups": True, "can_read_all_group_messages": False,
                        "supports_inline_queries": False})  # fmt: skip
        if method == "sendMessage":
            return _send_message(fields)
        if method == "getUpdates":
            return await _get_updates(fields)
        return _answer(error(404, "Not Found"))

    def _send_message(fields: dict[str, str]) -> web.Response:
        chat_id, text = fields.get("chat_id", ""), fields.get("text", "")
        if chat_id in state.blocked:
            return _answer(error(403, "Forbidden: bot was blocked by the user"))
        if chat_id not in state.chats:
            return _answer(error(400, "Bad Request: chat not found"))
        if not text.strip():
            return _answer(error(400, "Bad Request: message text is empty"))
        if len(text.encode("utf-16-le")) // 2 > 4096:
            return _answer(error(400, "Bad Request: message is too long"))
        parse_mode = fields.get("parse_mode")
        if parse_mode == "HTML" and (problem := _parse_problem(text)):
            return _answer(error(400, f"Bad Request: can't parse entities: {problem}"))
        state.sent.append(Sent(chat_id, text, parse_mode, state.clock()))
        return _ok({"message_id": len(state.sent), "date": int(time.time()),
                    "chat": {"id": int(chat_id), "type": "private"}, "text": text})  # fmt: skip

    async def _get_updates(fields: dict[str, str]) -> web.Response:
        offset = int(fields.get("offset", "0") or 0)
        state.confirmed = max(state.confirmed, offset)
        # Telegram forgets updates once a later offset confirms them.
        state.updates = [u for u in state.updates if u["update_id"] >= offset]
        timeout = min(float(fields.get("timeout", "0") or 0), 2.0)  # short polls keep tests fast
        if not state.updates and timeout:
            state._new_update.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state._new_update.wait(), timeout)
        return _ok([u for u in state.updates if u["update_id"] >= offset])

    app.router.add_route("*", "/bot{token}/{method}", handle)
    return app


def _ok(result: object) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _answer(reply: Reply) -> web.Response:
    return web.Response(
        status=reply.status, body=reply.body or b"", content_type="application/json"
    )
