"""The bot's commands, asked through the fake Bot API's getUpdates and answered in the chat."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import structlog

from monitor.config import AccountConfig
from monitor.durations import parse_duration
from monitor.health import AccountStatus
from monitor.model import Position, PositionKey, Severity, Snapshot
from monitor.notify.telegram.commands import (
    MAX_MUTE,
    MIN_MUTE,
    PAGE_ROWS,
    TABLE_WIDTH,
    Chat,
    Commands,
    positions_page,
)
from monitor.notify.telegram.format import MESSAGE_LIMIT, utf16_len
from monitor.notify.telegram.sink import TelegramBot, TelegramChatSink
from monitor.notify.telegram.updates import CommandListener, parse_command
from monitor.rules.conditions import FiringCondition
from monitor.store import Store
from monitor.store_thread import StoreThread
from tests.fakes.telegram import USERNAME, TelegramState, _parse_problem
from tests.telegram.conftest import AT, GROUP, PRIVATE, commit, short
from tests.telegram.test_sink import dispatcher, until

IST = ZoneInfo("Asia/Kolkata")
NOW = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)


def account(ident: str) -> AccountConfig:
    return AccountConfig(ident, "kotak_neo", timedelta(seconds=5), IST)


def position(i: int, mtm: str | None = "10.50") -> Position:
    key = PositionKey("kotak-main", "nse_fo", str(50000 + i), "NRML")
    return Position(key, f"SYM{i:03d}&X", Decimal(-25), None, None, None, None,
                    None if mtm is None else Decimal(mtm))  # fmt: skip


@dataclass
class View:
    """A daemon with two accounts: one healthy with positions, one failing."""

    positions: int = 3
    statuses_: list[AccountStatus] = field(
        default_factory=lambda: [
            AccountStatus(account("kotak-main"), NOW - timedelta(seconds=7), 0, "", False),
            AccountStatus(account("samco-1"), None, 12, "HTTP 503 <html>", True),
        ]
    )

    def statuses(self) -> Sequence[AccountStatus]:
        return self.statuses_

    def snapshot(self, ident: str) -> Snapshot | None:
        if ident != "kotak-main":
            return None
        rows = [position(i) for i in range(self.positions)]
        return Snapshot("kotak-main", "kotak_neo", NOW.astimezone(IST), {p.key: p for p in rows})

    def rule_names(self) -> Sequence[str]:
        return ("fresh-short", "desk-drawdown")

    firing: list[FiringCondition] = field(default_factory=list)

    def firing_conditions(self) -> Sequence[FiringCondition]:
        return self.firing


@dataclass
class Bot:
    """A listener running against the fake, answering PRIVATE and GROUP."""

    telegram: TelegramState
    store: Store
    sinks: list[TelegramChatSink]
    view: View

    async def ask(self, chat: str, text: str) -> list[str]:
        """Send ``text`` from ``chat``; the bot's replies to it, all of them: the listener
        confirms an update (asks for the next offset) only once it has answered it."""
        before = len(self.telegram.texts(chat))
        update_id = self.telegram.command(chat, text)
        await until(lambda: self.telegram.confirmed > update_id)
        return self.telegram.texts(chat)[before:]


@pytest.fixture
async def chat_bot(telegram: TelegramState, bot: TelegramBot, store: Store) -> AsyncIterator[Bot]:
    sinks = [
        TelegramChatSink("telegram:me", PRIVATE, bot),
        TelegramChatSink("telegram:desk", GROUP, bot),
    ]
    view = View()
    thread = StoreThread(store)
    listener = CommandListener(
        bot, sinks, Commands(view, thread, thread), thread, IST, clock=lambda: datetime.now(UTC)
    )
    task = asyncio.create_task(listener.run())
    try:
        yield Bot(telegram, store, sinks, view)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_status_lists_accounts_failures_and_the_outbox(chat_bot: Bot, store: Store) -> None:
    """/status: each account with its last good poll or its failures, and alerts waiting."""
    commit(store, [short("A")], ["telegram:desk"])
    (reply,) = await chat_bot.ask(PRIVATE, "/status")
    assert "kotak-main" in reply and "last good poll" in reply
    assert "samco-1" in reply and "12 failed" in reply and "HTTP 503 &lt;html&gt;" in reply
    assert "1 alert deliveries waiting" in reply
    assert _parse_problem(reply) == ""


async def status(view: View, store: Store) -> list[str]:
    """The /status reply at NOW, asked in the private chat."""
    chat = Chat(["telegram:me"], IST)
    thread = StoreThread(store)
    return await Commands(view, thread, thread).answer("status", [], chat, NOW)


async def test_status_lists_the_conditions_firing_now(store: Store) -> None:
    """/status: each condition firing with its rule, account, subject and since when, in the
    account's zone with the time elapsed; none firing says so."""
    view = View()
    (quiet,) = await status(view, store)
    assert "<b>Firing now</b>: none" in quiet
    since = NOW - timedelta(minutes=25)
    view.firing = [
        FiringCondition(
            "desk-drawdown", Severity.CRITICAL, "kotak-main", None, None, since, "mtm_drawdown"
        ),
        FiringCondition(
            "size<cap>",
            Severity.WARNING,
            "kotak-main",
            position(7).key,
            "M&M",
            since,
            "position_limit",
        ),
    ]
    (reply,) = await status(view, store)
    firing = reply.split("<b>Firing now</b>: 2\n", 1)[1].split("\n")[:2]
    assert firing == [
        "🔴 <b>desk-drawdown</b> <code>kotak-main</code> account since 09:05:00 IST (25m)",
        "🟠 <b>size&lt;cap&gt;</b> <code>kotak-main</code> <b>M&amp;M</b> nse_fo NRML"
        " since 09:05:00 IST (25m)",
    ]
    assert _parse_problem(reply) == ""


async def test_status_lists_at_most_fifty_firing_conditions(store: Store) -> None:
    """A position limit firing for hundreds of rows: 50 of them and how many more, in
    messages within Telegram's limit."""
    key = position(1).key
    view = View()
    view.firing = [
        FiringCondition(
            "size-cap", Severity.WARNING, "kotak-main", key, f"S{i:03d}", NOW, "position_limit"
        )
        for i in range(300)
    ]
    replies = await status(view, store)
    assert all(utf16_len(reply) <= MESSAGE_LIMIT for reply in replies)
    text = "\n".join(replies)
    assert "<b>Firing now</b>: 300" in text
    assert "S049" in text and "S050" not in text
    assert "and 250 more" in text


async def test_status_answers_in_the_chat_with_the_conditions_firing(chat_bot: Bot) -> None:
    """Through the fake Bot API, the firing list reaches the chat."""
    chat_bot.view.firing = [
        FiringCondition(
            "desk-drawdown", Severity.CRITICAL, "kotak-main", None, None, NOW, "mtm_drawdown"
        )
    ]
    (reply,) = await chat_bot.ask(PRIVATE, "/status")
    assert "<b>Firing now</b>: 1" in reply and "<b>desk-drawdown</b>" in reply


async def test_positions_are_paginated(chat_bot: Bot) -> None:
    """/positions of 60 rows: page 1 of 3 with a pointer to the next; page 3 has the rest."""
    chat_bot.view.positions = 60
    (first,) = await chat_bot.ask(PRIVATE, "/positions kotak-main")
    assert "60 positions" in first and "Page 1 of 3" in first
    assert "SYM000&amp;X" in first and f"SYM{PAGE_ROWS:03d}" not in first
    assert "MTM 630.00" in first  # 60 x 10.50, over every page
    (last,) = await chat_bot.ask(PRIVATE, "/positions kotak-main 3")
    assert "SYM059&amp;X" in last and "SYM000" not in last
    for reply in (first, last):
        assert _parse_problem(reply) == ""


async def test_positions_needs_an_account_when_several_are_configured(chat_bot: Bot) -> None:
    """Two accounts and none named: the answer lists them; an unknown one is named back."""
    (which,) = await chat_bot.ask(PRIVATE, "/positions")
    assert "kotak-main" in which and "samco-1" in which
    (unknown,) = await chat_bot.ask(PRIVATE, "/positions <nope>")
    assert "&lt;nope&gt;" in unknown


async def test_mute_holds_back_only_this_chats_alerts_and_records_them(
    chat_bot: Bot, store: Store, telegram: TelegramState
) -> None:
    """/mute fresh-short 30m in the group: its alerts are recorded as muted, the other chat
    still gets them; /unmute lets the next ones through."""
    (reply,) = await chat_bot.ask(GROUP, "/mute@" + USERNAME + " fresh-short 30m")
    assert "Muted rule fresh-short" in reply
    commit(store, [short("A")], ["telegram:me", "telegram:desk"])
    d, metrics = dispatcher(store, *chat_bot.sinks)
    await d.flush()
    assert any("<b>A</b>" in t for t in telegram.texts(PRIVATE))
    assert not any("<b>A</b>" in t for t in telegram.texts(GROUP))
    muted = metrics.registry.get_sample_value(
        "position_monitor_notifications_total", {"sink": "telegram:desk", "result": "muted"}
    )
    assert muted == 1
    assert store.outbox_depth() == {}
    (lifted,) = await chat_bot.ask(GROUP, "/unmute fresh-short")
    assert "Unmuted rule fresh-short" in lifted
    commit(store, [short("B", AT + timedelta(seconds=5))], ["telegram:desk"])
    await d.flush()
    assert any("<b>B</b>" in t for t in telegram.texts(GROUP))


async def test_mute_survives_a_restart(chat_bot: Bot, store: Store) -> None:
    """A mute is in the state file: a new Store on the same file still holds it back."""
    asked = datetime.now(UTC)
    await chat_bot.ask(PRIVATE, "/mute kotak-main 2h")
    answered = datetime.now(UTC)
    reopened = Store(store.path)
    mutes = reopened.mutes("telegram:me", answered)
    assert set(mutes) == {"account:kotak-main"}
    assert (
        asked + timedelta(hours=2) <= mutes["account:kotak-main"] <= answered + timedelta(hours=2)
    )
    assert reopened.mutes("telegram:desk", datetime.now(UTC)) == {}


async def test_mute_rejects_unknown_targets_and_bad_durations(chat_bot: Bot) -> None:
    """Unknown names list what exists; durations over 7 days or without a unit are refused."""
    (unknown,) = await chat_bot.ask(PRIVATE, "/mute nobody 1h")
    assert "No rule or account" in unknown and "fresh-short" in unknown
    (long,) = await chat_bot.ask(PRIVATE, "/mute fresh-short 8d")
    assert "at most 7d" in long
    (usage,) = await chat_bot.ask(PRIVATE, "/mute")
    assert "Usage" in usage


async def test_commands_are_answered_only_in_configured_chats(
    chat_bot: Bot, telegram: TelegramState
) -> None:
    """A stranger's /status gets nothing back and is logged once; our chat is answered."""
    with structlog.testing.capture_logs() as logs:
        telegram.command("999", "/status")
        telegram.command("999", "/positions")
        (reply,) = await chat_bot.ask(PRIVATE, "/help")
    assert telegram.texts("999") == []
    assert "/mute" in reply
    ignored = [e for e in logs if e["event"] == "telegram_chat_ignored"]
    assert [e["chat_id"] for e in ignored] == ["999"]


async def test_the_update_offset_is_stored(chat_bot: Bot, telegram: TelegramState) -> None:
    """After answering, the next offset is in the state file: a restart re-answers nothing."""
    update_id = telegram.command(PRIVATE, "/help")
    await until(lambda: bool(telegram.texts(PRIVATE)))
    await until(lambda: chat_bot.store.get_meta("telegram:telegram:update_offset") is not None)
    assert chat_bot.store.get_meta("telegram:telegram:update_offset") == str(update_id + 1)


def test_commands_for_another_bot_are_not_ours() -> None:
    """/status@other_bot in a group is someone else's; ours and bare commands parse."""
    assert parse_command("/status@other_bot", USERNAME) is None
    assert parse_command(f"/Status@{USERNAME} x", USERNAME) == ("status", ["x"])
    assert parse_command("/mute a 5m", USERNAME) == ("mute", ["a", "5m"])
    assert parse_command("hello", USERNAME) is None


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("2h", 7200),
        ("7d", 604800),
        ("8d", None),
        ("0m", None),
        ("5", None),
        ("1w", None),
    ],
)
def test_mute_durations(raw: str, seconds: int | None) -> None:
    """s, m, h, d from one second to seven days."""
    try:
        parsed = parse_duration(raw, minimum=MIN_MUTE, maximum=MAX_MUTE).total_seconds()
    except ValueError:
        parsed = None
    assert parsed == seconds


async def test_a_bad_argument_or_an_old_command_never_stops_the_bot(
    chat_bot: Bot, telegram: TelegramState
) -> None:
    """/positions ² (a digit int() refuses) is answered, not fatal; a /mute sent an hour ago,
    while the daemon was down, is not acted on; the next command is still answered."""
    (odd,) = await chat_bot.ask(PRIVATE, "/positions ²")
    assert "²" in odd
    telegram.command(PRIVATE, "/mute fresh-short 2h", age=3600)
    (reply,) = await chat_bot.ask(PRIVATE, "/help")
    assert "/mute" in reply
    assert chat_bot.store.mutes("telegram:me", datetime.now(UTC)) == {}


def test_positions_fit_a_phone_one_row_per_position() -> None:
    """/positions is a table at most 40 characters wide: symbol and product, quantity, MTM in
    whole rupees; a long symbol is cut, the time is HH:MM:SS and the zone's name."""
    rows = [
        Position(PositionKey("kotak-main", "nse_fo", "53179", "NRML"), "BANKNIFTY26NOVFUT",
                 Decimal(-60), None, None, None, None, Decimal("-123456.70")),
        Position(PositionKey("kotak-main", "nse_cm", "2885", "CNC"), "RELIANCE-EQ",
                 Decimal(200), None, None, None, None, Decimal("4210.20")),
        Position(PositionKey("kotak-main", "nse_fo", "1", "MIS"), "A-VERY-LONG-SYMBOL-NAME25DEC",
                 Decimal(75), None, None, None, None, None),
    ]  # fmt: skip
    taken_at = NOW.astimezone(IST)
    snapshot = Snapshot("kotak-main", "kotak_neo", taken_at, {p.key: p for p in rows})

    page = positions_page(snapshot, 1, NOW + timedelta(minutes=1))

    assert page == (
        "<b>kotak-main</b> at 09:30:00 IST: 3 positions\n"
        "<pre>SYMBOL                      QTY      MTM\n"
        "BANKNIFTY26NOVFUT NRML      -60 -123,457\n"
        "RELIANCE-EQ CNC             200    4,210\n"
        "A-VERY-LONG-SYMBOL-NAME25D…  75        ?</pre>\n"
        "MTM -119,246.50 (1 without a price)"
    )
    table = page.split("<pre>")[1].split("</pre>")[0]
    assert max(len(line) for line in table.split("\n")) <= TABLE_WIDTH
    # The day before, the time carries its date.
    assert "at 2026-11-23 09:30:00 IST" in positions_page(snapshot, 1, NOW + timedelta(days=1))


async def test_a_page_that_does_not_exist_says_how_many_there_are(chat_bot: Bot) -> None:
    """/positions kotak-main 99 of 60 rows: the page does not exist, there are 3."""
    chat_bot.view.positions = 60
    (reply,) = await chat_bot.ask(PRIVATE, "/positions kotak-main 99")
    assert reply == "Page 99 does not exist: <code>kotak-main</code> has 3 pages."
    (zero,) = await chat_bot.ask(PRIVATE, "/positions kotak-main 0")
    assert zero == "Page 0 does not exist: <code>kotak-main</code> has 3 pages."
