"""The bot's command loop: long-polls getUpdates and answers commands in configured chats.

Every other chat is ignored (logged once per chat id). The update offset is stored after each
update, so a restart neither answers an old command again nor skips a new one; a command sent
while the daemon was down for more than a couple of minutes is not acted on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import structlog
from telegram import Update
from telegram.error import RetryAfter, TelegramError

from monitor.backoff import Backoff
from monitor.notify.telegram.commands import Chat, Commands
from monitor.notify.telegram.format import html_field
from monitor.notify.telegram.sink import TelegramBot, TelegramChatSink, retry_seconds
from monitor.store import StoreError

log = structlog.get_logger(__name__)

MAX_BACKOFF = 60.0
MAX_COMMAND_AGE = timedelta(minutes=2)  # older commands arrived while the daemon was down


def parse_command(message: str, username: str | None) -> tuple[str, list[str]] | None:
    """``/mute fresh-short 30m`` -> ("mute", ["fresh-short", "30m"]); None if not for us.

    In groups Telegram appends the bot's name (``/status@desk_bot``); a command addressed to
    another bot is not ours.
    """
    if not message.startswith("/"):
        return None
    head, *args = message.split()
    command, _, addressee = head[1:].partition("@")
    if addressee and (username is None or addressee.lower() != username.lower()):
        return None
    return command.lower(), args


class UpdateOffsets(Protocol):
    """Where the listener keeps its update offset across restarts (the store is one)."""

    async def get_meta(self, key: str) -> str | None: ...

    async def set_meta(self, key: str, value: str) -> None: ...


class CommandListener:
    """Answers the commands of the chats that one bot delivers to."""

    def __init__(
        self,
        bot: TelegramBot,
        sinks: Sequence[TelegramChatSink],
        commands: Commands,
        offsets: UpdateOffsets,
        timezone: ZoneInfo,
        *,
        clock: Callable[[], datetime],
        backoff: Backoff | None = None,
    ) -> None:
        self._bot = bot
        self._sinks = tuple(sinks)
        self._commands = commands
        self._offsets = offsets
        self._timezone = timezone
        self._clock = clock
        self._backoff = backoff or Backoff(initial=1.0, cap=MAX_BACKOFF)
        self._offset_key = f"telegram:{bot.name}:update_offset"
        self._ignored: set[str] = set()

    @property
    def name(self) -> str:
        """The listener's task name."""
        return f"commands-{self._bot.name}"

    @property
    def bot_name(self) -> str:
        """The notify entry of the bot this listener answers for."""
        return self._bot.name

    async def run(self) -> None:
        """Poll for commands until cancelled; Telegram outages back off and recover."""
        offset = await self._stored_offset()
        failures = 0
        while True:
            try:
                await self._bot.ready()
                updates = await self._bot.bot.get_updates(
                    offset=offset, timeout=self._bot.long_poll, allowed_updates=["message"]
                )
            except TelegramError as err:
                failures += 1
                if failures == 1:
                    reason = self._bot.redact(err.message)
                    log.warning("telegram_updates_failing", bot=self._bot.name, reason=reason)
                delay = self._backoff.delay(failures)
                if isinstance(err, RetryAfter):
                    delay = max(delay, retry_seconds(err))
                await asyncio.sleep(delay)
                continue
            if failures:
                log.info("telegram_updates_recovered", bot=self._bot.name, failures=failures)
                failures = 0
            for update in updates:
                try:
                    await self._handle(update)
                except Exception:  # the loop edge: one bad command must not end the bot
                    log.exception("telegram_command_crashed", bot=self._bot.name)
                offset = update.update_id + 1
                try:
                    await self._offsets.set_meta(self._offset_key, str(offset))
                except StoreError as err:
                    log.error("telegram_offset_not_stored", bot=self._bot.name, error=str(err))

    async def _stored_offset(self) -> int | None:
        try:
            stored = await self._offsets.get_meta(self._offset_key)
            return int(stored) if stored is not None else None
        except (StoreError, ValueError) as err:
            log.error("telegram_offset_unreadable", bot=self._bot.name, error=str(err))
            return None

    async def _handle(self, update: Update) -> None:
        message = update.effective_message
        if message is None or not message.text:
            return
        if message.date < self._clock() - MAX_COMMAND_AGE:
            # Telegram keeps a day of messages for a bot that was down: an old /mute must not
            # silence alerts from now on.
            log.info("telegram_command_too_old", chat_id=str(message.chat.id), sent=message.date)
            return
        chat_id = str(message.chat.id)
        destinations = [s.name for s in self._sinks if s.chat_id == chat_id]
        if not destinations:
            if chat_id not in self._ignored:
                self._ignored.add(chat_id)
                log.warning("telegram_chat_ignored", bot=self._bot.name, chat_id=chat_id)
            return
        parsed = parse_command(message.text, self._bot.bot.username)
        if parsed is None:
            return
        command, args = parsed
        log.info("telegram_command", bot=self._bot.name, chat_id=chat_id, command=command)
        chat = Chat(destinations, self._timezone)
        try:
            replies = await self._commands.answer(command, args, chat, self._clock())
        except StoreError as err:
            replies = [f"The state file is not usable right now: {html_field(str(err))}"]
        for reply in replies:
            try:
                await self._bot.send_html(chat_id, reply)
            except TelegramError as err:
                reason = self._bot.redact(err.message)
                log.warning("telegram_reply_failed", chat_id=chat_id, reason=reason)
                return
