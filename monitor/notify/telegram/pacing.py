"""Telegram's sending limits, kept by spacing messages out rather than by hitting 429s.

Telegram allows about one message per second to a chat, 20 per minute to a group and 30 per
second over all chats (https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this).
Spacing every send by the interval its limits imply never exceeds any of them in any window:
1 s per private chat, 3 s per group (60 s / 20), just over 1/30 s across the bot. Slots are reserved
before sleeping, so concurrent senders queue in order instead of racing for the same slot.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

PRIVATE_INTERVAL = 1.0
GROUP_INTERVAL = 60.0 / 20
BOT_INTERVAL = 0.035  # 1/30 s plus headroom for clock jitter on both sides


def is_group(chat_id: str) -> bool:
    """Groups, supergroups and channels have negative ids; @channel names are channels."""
    return chat_id.startswith(("-", "@"))


class Pacer:
    """Hands out send slots per chat and for the whole bot."""

    def __init__(
        self,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._monotonic = monotonic
        self._sleep = sleep
        self._chat_next: dict[str, float] = {}
        self._bot_next = 0.0

    async def wait(self, chat_id: str) -> None:
        """Return when a message to ``chat_id`` may be sent."""
        interval = GROUP_INTERVAL if is_group(chat_id) else PRIVATE_INTERVAL
        slot = max(self._monotonic(), self._chat_next.get(chat_id, 0.0))
        self._chat_next[chat_id] = slot + interval
        await self._until(slot)
        # The bot-wide slot is taken only once the chat's is due, so a group waiting out its
        # 3 s never holds up a message to another chat.
        slot = max(self._monotonic(), self._bot_next)
        self._bot_next = slot + BOT_INTERVAL
        await self._until(slot)

    async def _until(self, slot: float) -> None:
        delay = slot - self._monotonic()
        if delay > 0:
            await self._sleep(delay)

    def hold(self, chat_id: str, seconds: float) -> None:
        """Telegram asked for a pause (429 retry_after): no slot for the chat before it ends."""
        until = self._monotonic() + seconds
        self._chat_next[chat_id] = max(self._chat_next.get(chat_id, 0.0), until)
