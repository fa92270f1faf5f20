"""The dead man's switch end to end: the real daemon as a subprocess says "started", "stopping"
on SIGTERM and a daily heartbeat to the fake Bot API, and names a chat it cannot reach."""

# The daemon-level fixtures are test_daemon.py's, imported: pytest injects them by parameter
# name, which the linter reads as redefining the imports.
# ruff: noqa: F811

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from monitor import __version__
from tests.daemon_process import DaemonProcess
from tests.fakes import ThreadedServer
from tests.fakes.telegram import TOKEN, TelegramState
from tests.faketime import faketime_env
from tests.leaks import assert_no_secret_leaks
from tests.telegram.test_daemon import (  # noqa: F401 - daemons and telegram are fixtures
    CHAT,
    daemons,
    telegram,
    write_config,
)


def said(fake: TelegramState, server: ThreadedServer, mark: str) -> list[str]:
    """The messages to the chat that open with ``mark``."""
    return [text for text in server.call(fake.texts, CHAT) if text.startswith(mark)]


def test_started_then_stopping_on_sigterm(
    tmp_path: Path,
    bundled_rules: Path,
    daemons: list[DaemonProcess],
    telegram: tuple[TelegramState, ThreadedServer],
) -> None:
    """The chat hears the daemon start (version, account, rules, a new state file) and, on
    SIGTERM, stop with the reason; the exit is clean and the token is in no output."""
    fake, server = telegram
    cfg = write_config(tmp_path, bundled_rules, server.base_url)
    daemon = DaemonProcess(cfg, tmp_path / "state.db").start()
    daemons.append(daemon)
    started = daemon.wait_for(lambda d: said(fake, server, "▶️"), 60, "the started message")
    assert f"position-monitor {__version__} started on " in started[0]
    assert "watching 1 account (sim)" in started[0] and "a new state file" in started[0]
    assert not said(fake, server, "⏹")
    assert daemon.terminate() == 0
    stopping = said(fake, server, "⏹")
    assert len(stopping) == 1 and "SIGTERM received" in stopping[0]
    assert_no_secret_leaks([TOKEN, TOKEN.split(":")[1]], *daemon.log_lines, *daemon.stdout_lines)


def test_a_restart_says_how_old_the_resumed_state_is(
    tmp_path: Path,
    bundled_rules: Path,
    daemons: list[DaemonProcess],
    telegram: tuple[TelegramState, ThreadedServer],
) -> None:
    fake, server = telegram
    cfg = write_config(tmp_path, bundled_rules, server.base_url)
    first = DaemonProcess(cfg, tmp_path / "state.db").start()
    daemons.append(first)
    first.wait_for(lambda d: said(fake, server, "▶️"), 60, "the first started message")
    assert first.terminate() == 0
    second = DaemonProcess(cfg, tmp_path / "state.db").start()
    daemons.append(second)
    again = second.wait_for(lambda d: said(fake, server, "▶️")[1:], 60, "the second started message")
    assert "state resumed, last written " in again[0]


def test_stopping_while_telegram_is_down_is_logged_and_the_exit_stays_clean(
    tmp_path: Path,
    bundled_rules: Path,
    daemons: list[DaemonProcess],
    telegram: tuple[TelegramState, ThreadedServer],
) -> None:
    """The stopping message is tried once, within its bound; Telegram down, the daemon says so
    in its log and exits 0 all the same."""
    fake, server = telegram
    cfg = write_config(tmp_path, bundled_rules, server.base_url)
    daemon = DaemonProcess(cfg, tmp_path / "state.db").start()
    daemons.append(daemon)
    daemon.wait_for(lambda d: said(fake, server, "▶️"), 60, "the started message")
    server.call(setattr, fake, "down", True)
    assert daemon.terminate() == 0
    failed = [
        e for e in daemon.logs()
        if e.get("event") == "liveness_not_delivered" and e.get("message") == "stopping"
    ]  # fmt: skip
    assert failed and failed[0]["sink"] == "telegram:me"
    assert failed[0]["level"] == "warning"
    assert not said(fake, server, "⏹")


def test_a_chat_that_never_messaged_the_bot_is_a_warning_at_start(
    tmp_path: Path,
    bundled_rules: Path,
    daemons: list[DaemonProcess],
    telegram: tuple[TelegramState, ThreadedServer],
) -> None:
    fake, server = telegram
    server.call(fake.chats.clear)
    cfg = write_config(tmp_path, bundled_rules, server.base_url)
    daemon = DaemonProcess(cfg, tmp_path / "state.db").start()
    daemons.append(daemon)
    warning = daemon.wait_for_log("liveness_not_delivered")
    assert warning["level"] == "warning" and warning["sink"] == "telegram:me"
    assert f"chat {CHAT}: Chat not found: message the bot first" in warning["error"]
    assert "@pm_test_bot" in warning["error"]


def test_the_heartbeat_arrives_at_its_local_time(
    tmp_path: Path,
    bundled_rules: Path,
    daemons: list[DaemonProcess],
    telegram: tuple[TelegramState, ThreadedServer],
) -> None:
    """With ``daemon.heartbeat: "09:00"`` and the daemon's clock started (libfaketime) at
    08:59:57 in the simulator's zone, "alive" arrives stamped 09:00 IST."""
    fake, server = telegram
    cfg = write_config(tmp_path, bundled_rules, server.base_url)
    cfg.write_text(cfg.read_text() + '\ndaemon:\n  heartbeat: "09:00"\n')
    start = datetime(2026, 11, 23, 8, 59, 57, tzinfo=ZoneInfo("Asia/Kolkata"))
    daemon = DaemonProcess(cfg, tmp_path / "state.db", env=faketime_env(start)).start()
    daemons.append(daemon)
    daemon.wait_for(lambda d: said(fake, server, "▶️"), 60, "the started message")
    beat = daemon.wait_for(lambda d: said(fake, server, "💓"), 60, "the heartbeat")
    assert " at 09:00:" in beat[0] and " IST: 1 account polling" in beat[0]
    assert "last good poll " in beat[0] and "outbox depth " in beat[0]
    assert daemon.terminate() == 0
    assert len(said(fake, server, "💓")) == 1
