"""Delivery through python-telegram-bot to the fake Bot API, from a real SQLite outbox."""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
import structlog
from prometheus_client import CollectorRegistry

from monitor.backoff import Backoff
from monitor.logs import configure_logging
from monitor.metrics import Metrics
from monitor.notify.outbox import Dispatcher
from monitor.notify.telegram.pacing import PRIVATE_INTERVAL, Pacer
from monitor.notify.telegram.sink import TelegramBot, TelegramChatSink
from monitor.store import Store
from monitor.store_thread import StoreThread
from tests.fakes.scripted import Reply
from tests.fakes.telegram import TOKEN, TelegramState, error, retry_after
from tests.leaks import assert_no_secret_leaks
from tests.telegram.conftest import AT, PRIVATE, commit, short
from tests.telegram.test_pacing import VirtualClock

FAST = Backoff(initial=0.05, cap=0.2)


def dispatcher(store: Store, *sinks: TelegramChatSink) -> tuple[Dispatcher, Metrics]:
    metrics = Metrics(CollectorRegistry())
    return Dispatcher(StoreThread(store), sinks, metrics, backoff=FAST), metrics


async def until(condition: Callable[[], bool], seconds: float = 60) -> None:
    async with asyncio.timeout(seconds):  # generous: a busy machine is slow, not wrong
        while not condition():
            await asyncio.sleep(0.02)


async def running(d: Dispatcher, body: Callable[[], Awaitable[None]]) -> None:
    task = asyncio.create_task(d.run())
    try:
        await body()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_one_poll_is_one_message_and_leaves_the_outbox(
    telegram: TelegramState, bot: TelegramBot, store: Store
) -> None:
    """Three alerts of one poll reach the chat as one HTML message; nothing stays queued."""
    commit(store, [short("A"), short("B&C"), short("D")], ["telegram:me"])
    d, metrics = dispatcher(store, TelegramChatSink("telegram:me", PRIVATE, bot))
    await d.flush()
    (sent,) = telegram.sent
    assert sent.chat_id == PRIVATE and sent.parse_mode == "HTML"
    assert "B&amp;C" in sent.text and "3 alerts" in sent.text
    assert store.outbox_depth() == {}
    delivered = metrics.registry.get_sample_value(
        "position_monitor_notifications_total", {"sink": "telegram:me", "result": "delivered"}
    )
    assert delivered == 3
    assert [m for m, _ in telegram.calls] == ["getMe", "sendMessage"]


async def test_retry_after_is_honoured(
    telegram: TelegramState, bot: TelegramBot, store: Store
) -> None:
    """A 429 with retry_after 2: the next attempt comes no sooner, and the alert goes once."""
    telegram.fail("sendMessage", retry_after(2))
    commit(store, [short("A")], ["telegram:me"])
    d, _ = dispatcher(store, TelegramChatSink("telegram:me", PRIVATE, bot))

    async def body() -> None:
        await until(lambda: len(telegram.sent) == 1, seconds=30)

    await running(d, body)
    attempts = [t for m, t in telegram.calls if m == "sendMessage"]
    assert len(attempts) == 2
    assert attempts[1] - attempts[0] >= 2.0
    assert len(telegram.texts()) == 1


async def test_server_errors_and_timeouts_are_retried_without_duplicates(
    telegram: TelegramState, api_url: str, store: Store
) -> None:
    """A 500, a 502 and an answer slower than the request timeout: retried, sent once."""
    bot = TelegramBot("t", TOKEN, api_url, redact=str, request_timeout=3, long_poll=1)
    telegram.fail(
        "sendMessage",
        error(500, "Internal Server Error"),
        Reply(502, b"<html>Bad Gateway</html>", "text/html"),
        Reply(200, None, delay=600),  # held until the fake shuts down: the bot gives up at 3 s
    )
    commit(store, [short("A")], ["telegram:me"])
    d, metrics = dispatcher(store, TelegramChatSink("telegram:me", PRIVATE, bot))
    try:
        # Done once the dispatcher has recorded the delivery, not when the fake received it.
        await running(d, lambda: until(lambda: store.outbox_depth() == {}, seconds=60))
    finally:
        await bot.close()
    results = {
        reason: metrics.registry.get_sample_value(
            "position_monitor_notifications_total", {"sink": "telegram:me", "result": reason}
        )
        for reason in ("server_error", "transport_error", "delivered")
    }
    assert results == {"server_error": 2.0, "transport_error": 1.0, "delivered": 1.0}
    assert len(telegram.texts()) == 1


async def test_an_unreachable_chat_is_refused_logged_once_and_blocks_no_one(
    telegram: TelegramState, bot: TelegramBot, store: Store
) -> None:
    """A blocked chat and an unknown chat park their alerts; the good chat gets all of its."""
    telegram.blocked.add("777")
    sinks = ["telegram:blocked", "telegram:gone", "telegram:desk"]
    for i in range(3):
        commit(store, [short(f"S{i}", AT + timedelta(seconds=i))], sinks)
    d, metrics = dispatcher(
        store,
        TelegramChatSink("telegram:blocked", "777", bot),
        TelegramChatSink("telegram:gone", "888", bot),
        TelegramChatSink("telegram:desk", PRIVATE, bot),
    )
    with structlog.testing.capture_logs() as logs:
        await d.flush()
    assert len(telegram.texts(PRIVATE)) == 3
    refused = [e for e in logs if e["event"] == "delivery_refused"]
    assert sorted(e["sink"] for e in refused) == ["telegram:blocked", "telegram:gone"]
    assert any("chat 777" in e["reason"] and "blocked" in e["reason"] for e in refused)
    assert any(
        "chat 888" in e["reason"] and "chat not found" in e["reason"].lower() for e in refused
    )
    for sink in ("telegram:blocked", "telegram:gone"):
        parked = metrics.registry.get_sample_value(
            "position_monitor_undeliverable_alerts_total", {"sink": sink}
        )
        assert parked == 3
    assert store.outbox_depth() == {}


async def test_messages_to_one_chat_are_a_second_apart(
    telegram: TelegramState, api_url: str, store: Store
) -> None:
    """Four polls' alerts to one private chat: the fake never sees two in one second.

    The pacer and the fake share a clock that moves only when the pacer sleeps, so the spacing
    is what the pacer asked for, whatever the machine's load adds to each request."""
    clock = VirtualClock()
    telegram.clock = clock.monotonic
    pacer = Pacer(monotonic=clock.monotonic, sleep=clock.sleep)
    bot = TelegramBot("t", TOKEN, api_url, redact=str, pacer=pacer, long_poll=1)
    for i in range(4):
        commit(store, [short(f"S{i}", AT + timedelta(seconds=i))], ["telegram:me"])
    d, _ = dispatcher(store, TelegramChatSink("telegram:me", PRIVATE, bot))
    try:
        await d.flush()
    finally:
        await bot.close()
    times = [s.at for s in telegram.sent]
    assert len(times) == 4
    assert [b - a for a, b in itertools.pairwise(times)] == [PRIVATE_INTERVAL] * 3


async def test_telegram_down_then_back_loses_nothing_and_keeps_order(
    telegram: TelegramState, bot: TelegramBot, store: Store
) -> None:
    """Alerts queued while the API resets every connection all arrive once, in order."""
    telegram.down = True
    d, _ = dispatcher(store, TelegramChatSink("telegram:me", PRIVATE, bot))

    async def body() -> None:
        for i in range(5):
            commit(store, [short(f"S{i}", AT + timedelta(seconds=i))], ["telegram:me"])
            d.wake()
            await asyncio.sleep(0.1)
        await until(lambda: len(telegram.calls) >= 3, seconds=30)  # getMe and retries, reset
        assert telegram.sent == []
        assert store.outbox_depth() == {"telegram:me": 5}
        telegram.down = False
        await until(lambda: store.outbox_depth() == {}, seconds=60)

    await running(d, body)
    texts = telegram.texts()
    assert [next(f"S{i}" for i in range(5) if f"<b>S{i}</b>" in t) for t in texts] == [
        f"S{i}" for i in range(5)
    ]


async def test_a_split_group_that_fails_halfway_resends_only_the_rest(
    telegram: TelegramState, bot: TelegramBot, store: Store
) -> None:
    """200 alerts of one poll need several messages; a 500 on the second one: no alert twice."""
    alerts = [short(f"SYM{i:03d}") for i in range(200)]
    commit(store, alerts, ["telegram:desk"])
    telegram.fail("sendMessage", Reply(200), error(500, "Internal Server Error"))
    d, _ = dispatcher(store, TelegramChatSink("telegram:desk", PRIVATE, bot))
    await running(d, lambda: until(lambda: store.outbox_depth() == {}, seconds=60))
    joined = "\n".join(telegram.texts())
    for i in range(200):
        assert joined.count(f"<b>SYM{i:03d}</b>") == 1, f"SYM{i:03d}"
    assert len(telegram.sent) >= 3


@pytest.mark.usefixtures("restore_logging")
async def test_the_bot_token_never_reaches_the_logs(
    telegram: TelegramState, api_url: str, store: Store
) -> None:
    """httpx at INFO logs every URL (token inside); a bad token's errors too: all redacted."""
    stream = io.StringIO()
    configure_logging(secrets=[TOKEN], stream=stream, json_output=True)
    logging.getLogger("httpx").setLevel(logging.INFO)  # the worst case: URLs logged
    good = TelegramBot("t", TOKEN, api_url, redact=str, long_poll=1)
    commit(store, [short("A")], ["telegram:me"])
    d, _ = dispatcher(store, TelegramChatSink("telegram:me", PRIVATE, good))
    await d.flush()
    telegram.token = "1:other"  # now the API rejects our token
    commit(store, [short("B", AT + timedelta(seconds=1))], ["telegram:me"])
    await d.flush()
    await good.close()
    output = stream.getvalue()
    assert "sendMessage" in output, "the httpx request lines were logged"
    assert "[redacted]" in output
    assert_no_secret_leaks([TOKEN, TOKEN.split(":", 1)[1]], output)
    assert len(telegram.sent) == 1
    assert store.outbox_depth() == {"telegram:me": 1}, "a rejected token keeps the alert"


async def test_two_ready_calls_at_once_make_one_get_me(
    telegram: TelegramState, bot: TelegramBot
) -> None:
    """Chats and the command listener get ready together at start: one getMe between them."""
    await asyncio.gather(bot.ready(), bot.ready(), bot.ready())
    assert [m for m, _ in telegram.calls] == ["getMe"]


async def test_a_reloaded_alert_is_headed_with_the_zone_name(
    telegram: TelegramState, bot: TelegramBot, store: Store
) -> None:
    """An alert comes back from the outbox with a bare UTC offset; the header names the zone."""
    ist = ZoneInfo("Asia/Kolkata")
    commit(store, [short("A", AT.astimezone(ist))], ["telegram:me"])
    (reloaded,) = store.pending("telegram:me", 10)
    assert reloaded.alert.at.tzname() == "UTC+05:30", "the premise: the zone is lost on reload"
    sink = TelegramChatSink("telegram:me", PRIVATE, bot, {"kotak-main": ist})
    d, _ = dispatcher(store, sink)
    await d.flush()
    (sent,) = telegram.texts()
    assert "2026-11-23 09:20:05 IST" in sent.splitlines()[0]
    assert "UTC+" not in sent
