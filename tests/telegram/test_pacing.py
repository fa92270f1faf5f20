"""Telegram's limits kept by spacing sends, on a virtual clock."""

from __future__ import annotations

import asyncio
import itertools

from monitor.notify.telegram.pacing import Pacer


class VirtualClock:
    """Monotonic time that moves only when the pacer sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


async def sends(pacer: Pacer, clock: VirtualClock, chat: str, count: int) -> list[float]:
    times = []
    for _ in range(count):
        await pacer.wait(chat)
        times.append(clock.now)
    return times


async def test_a_private_chat_gets_at_most_one_message_a_second() -> None:
    """Five messages to one private chat are a second apart; the first goes at once."""
    clock = VirtualClock()
    pacer = Pacer(monotonic=clock.monotonic, sleep=clock.sleep)
    times = await sends(pacer, clock, "42", 5)
    assert times[0] == 1000.0
    assert [round(b - a, 6) for a, b in itertools.pairwise(times)] == [1.0] * 4


async def test_a_group_gets_at_most_twenty_a_minute() -> None:
    """Sends to a group are 3 s apart: no 60 s window holds more than 20."""
    clock = VirtualClock()
    pacer = Pacer(monotonic=clock.monotonic, sleep=clock.sleep)
    times = await sends(pacer, clock, "-100123", 45)
    for start in times:
        assert sum(1 for t in times if start <= t < start + 60) <= 20


async def test_the_bot_sends_at_most_thirty_a_second_over_all_chats() -> None:
    """100 private chats at once: no one-second window holds more than 30 sends."""
    clock = VirtualClock()
    pacer = Pacer(monotonic=clock.monotonic, sleep=clock.sleep)
    times = []
    for chat in range(100):
        await pacer.wait(str(chat))
        times.append(clock.now)
    for start in times:
        assert sum(1 for t in times if start <= t < start + 1.0) <= 30
    assert times[-1] - times[0] < 100 * 0.04, "not much slower than the bot-wide limit needs"


async def test_a_slow_group_does_not_hold_up_another_chat() -> None:
    """While a group waits out its 3 s, a private chat's message goes straight away."""
    clock = VirtualClock()
    pacer = Pacer(monotonic=clock.monotonic, sleep=clock.sleep)
    await pacer.wait("-100123")
    await pacer.wait("42")
    assert clock.now - 1000.0 < 0.1


async def test_hold_delays_the_chat_by_retry_after() -> None:
    """After a 429 with retry_after 7, the chat's next slot is 7 s later."""
    clock = VirtualClock()
    pacer = Pacer(monotonic=clock.monotonic, sleep=clock.sleep)
    await pacer.wait("42")
    pacer.hold("42", 7)
    await pacer.wait("42")
    assert clock.now == 1007.0
