"""The real daemon as a subprocess delivering to the fake Bot API: the bundled rules.yaml's
Telegram entry switched on by two environment variables, outages, kill -9, mutes, the token."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_process import DaemonProcess
from tests.fakes import ThreadedServer
from tests.fakes.telegram import TOKEN, TelegramState, make_app
from tests.leaks import assert_no_secret_leaks

CHAT = "4242"
_ALERT_MARK = re.compile("^(🔴|🟠|🔵|✅) ", re.MULTILINE)  # a severity, or resolved


@pytest.fixture
def telegram(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TelegramState, ThreadedServer]]:
    """The fake Bot API, and the two variables that switch the bundled Telegram entry on."""
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TELEGRAM_CHAT_ID", CHAT)
    state = TelegramState(chats={CHAT})
    with ThreadedServer(lambda: make_app(state)) as server:
        yield state, server


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:
        daemon.stop()


def write_config(tmp_path: Path, bundled_rules: Path, api_url: str) -> Path:
    """The bundled rules with a fast simulator and the Telegram entry pointed at the fake."""
    text = bundled_rules.read_text()
    text = text.replace(
        "accounts: []",
        "accounts:\n  - id: sim\n    broker: simulator\n    poll_every: 500ms\n    seed: 3",
    )
    text = text.replace("    optional: true\n", f"    optional: true\n    api_url: {api_url}\n")
    assert api_url in text
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


def telegram_deliveries(state: Path, up_to: int | None = None) -> dict[str, int]:
    """Deliveries to telegram:me (of alerts up to id ``up_to``) by outcome; none while the
    daemon has not created the state file and its tables yet."""
    if not state.exists():
        return {}
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'deliveries'").fetchone() is None:
            return {}
        rows = db.execute(
            "SELECT CASE WHEN delivered_at IS NOT NULL THEN 'delivered'"
            " WHEN muted_at IS NOT NULL THEN 'muted' WHEN failed_at IS NOT NULL THEN 'refused'"
            " ELSE 'pending' END, count(*) FROM deliveries WHERE sink = 'telegram:me'"
            " AND alert_id <= ? GROUP BY 1",
            (up_to if up_to is not None else 2**62,),
        ).fetchall()
    return dict(rows)


def last_alert_id(state: Path) -> int:
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT max(id) FROM alerts").fetchone()[0])


def alerts_in(texts: list[str]) -> int:
    """How many alert blocks the messages hold (a severity mark or ✅ opens each)."""
    return sum(len(_ALERT_MARK.findall(t)) for t in texts)


def test_two_variables_switch_telegram_on_and_outages_lose_nothing(
    tmp_path: Path,
    bundled_rules: Path,
    daemons: list[DaemonProcess],
    telegram: tuple[TelegramState, ThreadedServer],
) -> None:
    """Telegram down while alerts pile up, the daemon killed -9, started again with Telegram
    back: every alert arrives exactly once, in order; the token is in no log line."""
    fake, server = telegram
    server.call(setattr, fake, "down", True)
    cfg = write_config(tmp_path, bundled_rules, server.base_url)
    state = tmp_path / "state.db"
    first = DaemonProcess(cfg, state).start()
    daemons.append(first)
    first.wait_for(lambda d: telegram_deliveries(state).get("pending", 0) >= 5, 40, "alerts queued")
    first.kill9()
    queued = telegram_deliveries(state)
    assert queued.get("delivered", 0) == 0 and fake.sent == []
    at_kill = last_alert_id(state)

    server.call(setattr, fake, "down", False)
    second = DaemonProcess(cfg, state).start()
    daemons.append(second)
    second.wait_for(
        lambda d: telegram_deliveries(state, at_kill) == {"delivered": queued["pending"]},
        60,
        "everything queued during the outage delivered",
    )
    assert second.terminate() == 0
    outcome = telegram_deliveries(state)
    assert outcome.get("refused", 0) == 0
    texts = server.call(fake.texts, CHAT)
    # Each alert the state file calls delivered is in exactly one message; at most the message
    # in flight when SIGTERM's bounded flush ran out was accepted without being marked.
    assert 0 <= alerts_in(texts) - outcome["delivered"] <= alerts_in(texts[-1:])
    # One poll's alerts are one message, headed by its time: the times never go backwards.
    times = [re.search(r"\d\d:\d\d:\d\d", t)[0] for t in texts]  # type: ignore[index]
    assert times == sorted(times)
    # Read back from the outbox, each alert's time still names the simulator's zone.
    assert all(f"{time} IST" in text for time, text in zip(times, texts, strict=True))
    assert_no_secret_leaks([TOKEN, TOKEN.split(":")[1]], *first.log_lines, *second.log_lines)
    assert any(e.get("event") == "telegram_ready" for e in second.logs())


def test_a_mute_set_by_command_holds_across_a_restart(
    tmp_path: Path,
    bundled_rules: Path,
    daemons: list[DaemonProcess],
    telegram: tuple[TelegramState, ThreadedServer],
) -> None:
    """/mute sim 1h, then kill -9 and start again: the account's alerts are recorded as muted
    and none reaches the chat after the mute was confirmed."""
    fake, server = telegram
    cfg = write_config(tmp_path, bundled_rules, server.base_url)
    state = tmp_path / "state.db"
    first = DaemonProcess(cfg, state).start()
    daemons.append(first)
    first.wait_for(lambda d: bool(fake.sent), 30, "a first alert message")
    server.call(fake.command, CHAT, "/mute sim 1h")
    first.wait_for(
        lambda d: any("Muted account sim" in t for t in server.call(fake.texts, CHAT)),
        30,
        "the mute confirmed",
    )
    first.kill9()
    confirmed = len(server.call(fake.texts, CHAT))
    before = telegram_deliveries(state).get("muted", 0)

    second = DaemonProcess(cfg, state).start()
    daemons.append(second)
    second.wait_for(
        lambda d: telegram_deliveries(state).get("muted", 0) >= before + 3, 40, "muted alerts"
    )
    assert second.terminate() == 0
    after = server.call(fake.texts, CHAT)[confirmed:]
    assert alerts_in(after) == 0, after
    assert telegram_deliveries(state).get("pending", 0) == 0
