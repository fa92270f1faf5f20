"""A fake Telegram Bot API per test, and a real SQLite outbox to deliver from."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from monitor.logs import Redactor
from monitor.model import Alert, PositionKey, Severity, Snapshot
from monitor.notify.telegram.sink import TelegramBot
from monitor.store import Store
from tests.fakes import serve
from tests.fakes.telegram import TOKEN, TelegramState, make_app

PRIVATE = "4242"
GROUP = "-1001234567890"
AT = datetime(2026, 11, 23, 3, 50, 5, tzinfo=UTC)


@pytest.fixture
def telegram() -> TelegramState:
    """The fake's state: two chats the bot may write to."""
    return TelegramState(chats={PRIVATE, GROUP})


@pytest.fixture
async def api_url(telegram: TelegramState) -> AsyncIterator[str]:
    """The fake Bot API's address."""
    async with serve(make_app(telegram)) as base:
        yield base


@pytest.fixture
async def bot(api_url: str) -> AsyncIterator[TelegramBot]:
    """A real PTB bot talking to the fake, with a short long-poll."""
    bot = TelegramBot("telegram", TOKEN, api_url, redact=Redactor([TOKEN]).scrub, long_poll=1)
    yield bot
    await bot.close()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """A real SQLite state file."""
    return Store(tmp_path / "state.db")


def short(symbol: str, at: datetime = AT, account: str = "kotak-main") -> Alert:
    """A new_short alert."""
    key = PositionKey(account, "nse_fo", symbol, "NRML")
    return Alert(
        "fresh-short", "new_short", Severity.WARNING, account, key, symbol, at,
        f"New short {symbol} (nse_fo NRML): net qty 0 -> -25",
        {"net_qty_before": Decimal(0), "net_qty": Decimal(-25)},
    )  # fmt: skip


def commit(store: Store, alerts: Sequence[Alert], sinks: Sequence[str]) -> None:
    """Queue alerts in the outbox as one poll would."""
    snapshot = Snapshot(alerts[0].account, "kotak_neo", alerts[0].at, {})
    store.commit_poll(snapshot, date(2026, 11, 23), [], {}, [(a, sinks) for a in alerts])


Committer = Callable[[Sequence[Alert], Sequence[str]], None]
