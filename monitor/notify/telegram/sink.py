"""Telegram delivery: one bot shared by its chats, each chat a sink of its own.

The sink sends and says what went wrong; retries, backoff and outbox marking are the
dispatcher's. PTB's errors map to a small set of reasons: 429 (``RetryAfter``) is retried after
the wait Telegram asked for; timeouts, network errors and 5xx are retried with backoff; a chat
that cannot be reached (400 chat not found, 403 bot blocked) is refused for good; a rejected
bot token is retried, since alerts must wait for a fixed token rather than be dropped. Each
failure's detail ends with what to do about it, for the logs, the parked reason and
``position-monitor notify test``.
"""

from __future__ import annotations

import asyncio
import html
import os
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo

import structlog
from telegram import Bot, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest

from monitor.model import Alert
from monitor.notify.base import DeliveryFailed, Reason, sink_bug, url_host
from monitor.notify.telegram.format import group_messages
from monitor.notify.telegram.pacing import Pacer

log = structlog.get_logger(__name__)

REQUEST_TIMEOUT = 10.0  # seconds for one Bot API call
LONG_POLL = 25  # seconds getUpdates waits for a command on Telegram's side
_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
# PTB words a connection that failed before any answer like this; an HTTP error has the
# server's description instead.
_NO_ANSWER = re.compile(r"^(httpx\.|Unknown error in HTTP implementation)")


class TelegramBot:
    """One bot token: the PTB ``Bot``, its pacing, and the redaction of its token."""

    def __init__(
        self,
        name: str,
        token: str,
        api_url: str,
        *,
        redact: Callable[[str], str],
        pacer: Pacer | None = None,
        request_timeout: float = REQUEST_TIMEOUT,
        long_poll: int = LONG_POLL,
    ) -> None:
        self.name = name
        self.host = url_host(api_url)  # named in network errors; the URL holds the token
        self.long_poll = long_poll
        self.redact = redact
        self.pacer = pacer or Pacer()
        # PTB's documented opt-in to time periods as timedeltas (its next major version's
        # only kind); without it every 429 warns that seconds are deprecated.
        os.environ.setdefault("PTB_TIMEDELTA", "true")
        self.bot = Bot(
            token,
            base_url=f"{api_url}/bot",
            base_file_url=f"{api_url}/file/bot",
            request=_request(8, request_timeout, request_timeout),
            # getUpdates holds its request open for the long poll: a client of its own.
            get_updates_request=_request(1, request_timeout, long_poll + request_timeout),
        )
        self._initialized = False
        # The chats' senders and the command listener all call ready() at start: one getMe.
        self._initializing = asyncio.Lock()

    async def ready(self) -> None:
        """Call getMe once (PTB needs it before anything else); raises like a send would."""
        async with self._initializing:
            if not self._initialized:
                await self.bot.initialize()
                self._initialized = True
                log.info("telegram_ready", bot=self.name, username=self.bot.username)

    async def send_html(self, chat_id: str, text: str) -> None:
        """Send one HTML message when the pacing allows; PTB errors propagate."""
        await self.ready()
        await self.pacer.wait(chat_id)
        await self.bot.send_message(
            chat_id, text, parse_mode=ParseMode.HTML, link_preview_options=_NO_PREVIEW
        )

    def username(self) -> str:
        """The bot's @username once getMe answered, else a description of it."""
        return f"@{self.bot.username}" if self._initialized else "the bot"

    async def close(self) -> None:
        """Close the HTTP clients (PTB opens them before getMe, so also after a failed one)."""
        await self.bot.shutdown()
        self._initialized = False


def retry_seconds(err: RetryAfter) -> float:
    """The wait a 429 asked for (PTB gives seconds or a timedelta, by its settings)."""
    wait = err.retry_after
    return wait.total_seconds() if isinstance(wait, timedelta) else float(wait)


def _request(pool: int, timeout: float, read: float) -> HTTPXRequest:
    return HTTPXRequest(
        connection_pool_size=pool,
        connect_timeout=min(5.0, timeout),
        read_timeout=read,
        write_timeout=timeout,
        pool_timeout=timeout,
    )


class TelegramChatSink:
    """Delivers alert groups to one chat, one message per group unless it needs splitting."""

    def __init__(
        self, name: str, chat_id: str, bot: TelegramBot, zones: Mapping[str, tzinfo] | None = None
    ) -> None:
        self._name = name
        self.chat_id = chat_id
        self.bot = bot
        self._zones = zones or {}  # account id -> the zone its message headers are written in

    @property
    def name(self) -> str:
        """The destination's name: ``<notify entry>:<chat name>``."""
        return self._name

    async def say(self, text: str) -> None:
        """Send a message about the daemon itself (not an alert); DeliveryFailed as ``send``."""
        try:
            await self.bot.send_html(self.chat_id, html.escape(text, quote=False))
        except TelegramError as err:
            raise self._failure(err, 0) from err

    async def send(self, alerts: Sequence[Alert]) -> None:
        """Send the group's messages in order; on failure say how many alerts went out."""
        complete = 0
        for message in group_messages(
            alerts, self._zones.get(alerts[0].account), datetime.now(UTC)
        ):
            try:
                await self.bot.send_html(self.chat_id, message.text)
            except ChatMigrated as err:
                # A group upgraded to a supergroup has a new id; follow it and send again.
                log.warning(
                    "telegram_chat_migrated",
                    sink=self._name,
                    chat_id=self.chat_id,
                    new_chat_id=err.new_chat_id,
                    hint="put the new chat id in rules.yaml",
                )
                self.chat_id = str(err.new_chat_id)
                raise DeliveryFailed(
                    Reason.CLIENT_ERROR, "chat migrated", retryable=True, delivered=complete,
                    retry_after=0.0,
                ) from err  # fmt: skip
            except TelegramError as err:
                failure = self._failure(err, complete)
                if failure.retry_after:
                    self.bot.pacer.hold(self.chat_id, failure.retry_after)
                raise failure from err
            except Exception as err:
                raise sink_bug(err, complete) from err
            complete = message.complete

    def _failure(self, err: TelegramError, delivered: int) -> DeliveryFailed:
        detail = f"chat {self.chat_id}: {self.bot.redact(err.message)}"
        if isinstance(err, RetryAfter):
            return DeliveryFailed(
                Reason.RATE_LIMITED, detail, retryable=True, delivered=delivered,
                retry_after=retry_seconds(err),
            )  # fmt: skip
        if isinstance(err, Forbidden | BadRequest):
            detail += _chat_fix(err.message, self.bot.username())
            return DeliveryFailed(Reason.CLIENT_ERROR, detail, retryable=False, delivered=delivered)
        if isinstance(err, InvalidToken):
            detail = f"bot {self.bot.name}: token rejected: create a new one with @BotFather"
            detail = f"chat {self.chat_id}: {detail}"
            return DeliveryFailed(Reason.AUTH_ERROR, detail, retryable=True, delivered=delivered)
        if isinstance(err, TimedOut) or (
            isinstance(err, NetworkError) and _NO_ANSWER.match(err.message)
        ):
            reason = self.bot.redact(err.message)
            detail = f"chat {self.chat_id}: cannot reach {self.bot.host}: {reason}"
            return DeliveryFailed(
                Reason.TRANSPORT_ERROR, detail, retryable=True, delivered=delivered
            )
        return DeliveryFailed(Reason.SERVER_ERROR, detail, retryable=True, delivered=delivered)

    async def close(self) -> None:
        """The bot is shared by its chats; the daemon closes it."""


def _chat_fix(message: str, username: str) -> str:
    """What to do about a chat Telegram refused, from its description (README, "Telegram
    setup"); "" when the refusal is about the message rather than the chat."""
    lowered = message.lower()
    if "chat not found" in lowered:
        return (
            f": message the bot first (send /start to {username}; a group: add the bot;"
            " a channel: make the bot an admin), and check the chat id"
        )
    if "blocked by the user" in lowered:
        return f": unblock {username} in that chat"
    if "not a member" in lowered or "kicked" in lowered:
        return f": add {username} to the chat again (a channel: as an admin)"
    if "not enough rights" in lowered or "have no rights" in lowered:
        return f": let {username} post in the chat (a channel: make it an admin)"
    return ""
