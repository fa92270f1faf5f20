"""The dead man's switch messages and the heartbeat's next time, as plain data."""

from __future__ import annotations

import asyncio
import errno
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from structlog.testing import capture_logs

from monitor.config.accounts import AccountConfig
from monitor.health import AccountStatus
from monitor.notify import liveness

IST = ZoneInfo("Asia/Kolkata")
NEW_YORK = ZoneInfo("America/New_York")


def test_next_heartbeat_is_today_before_its_time_and_tomorrow_after() -> None:
    at = time(8, 45)
    before = datetime(2026, 11, 23, 8, 44, 59, tzinfo=IST)
    assert liveness.next_heartbeat(before, at, IST) == datetime(2026, 11, 23, 8, 45, tzinfo=IST)
    on_time = datetime(2026, 11, 23, 8, 45, tzinfo=IST)
    assert liveness.next_heartbeat(on_time, at, IST) == datetime(2026, 11, 24, 8, 45, tzinfo=IST)
    # 23:30 UTC is 05:00 on the 24th in India: that morning's.
    late = datetime(2026, 11, 23, 23, 30, tzinfo=UTC)
    assert liveness.next_heartbeat(late, at, IST) == datetime(2026, 11, 24, 8, 45, tzinfo=IST)


def test_next_heartbeat_keeps_its_local_time_across_a_clock_change() -> None:
    saturday = datetime(2026, 3, 7, 12, 0, tzinfo=NEW_YORK)
    sunday = liveness.next_heartbeat(saturday + timedelta(hours=21), time(8, 45), NEW_YORK)
    assert sunday.astimezone(NEW_YORK).hour == 8 and sunday.utcoffset() == timedelta(hours=-4)


def status(account: str, last: datetime | None, *, failing: bool = False) -> AccountStatus:
    config = AccountConfig(account, "simulator", timedelta(seconds=5), IST)
    return AccountStatus(config, last, 3 if failing else 0, "", failing)


def test_heartbeat_names_failing_accounts_and_the_oldest_good_poll() -> None:
    now = datetime(2026, 11, 23, 9, 0, 1, tzinfo=IST)
    text = liveness.heartbeat_text(
        "box",
        [
            status("a", now - timedelta(seconds=2)),
            status("b", now - timedelta(minutes=5), failing=True),
            status("c", None),
        ],
        4,
        now,
        IST,
    )
    assert text == (
        "💓 position-monitor alive on box at 09:00:01 IST: 2 accounts polling; failing: b;"
        " last good poll 08:55:01 IST (b, the oldest of 2); outbox depth 4."
    )


def test_started_says_what_is_watched_and_how_old_the_state_is() -> None:
    started = liveness.Started("1.0", "box", ["a", "b"], 1, timedelta(hours=3, minutes=5))
    assert liveness.started_text(started) == (
        "▶️ position-monitor 1.0 started on box: watching 2 accounts (a, b), 1 rule;"
        " state resumed, last written 3 h 5 min ago."
    )


class Chat:
    """A speaker that keeps what it was told."""

    def __init__(self, name: str, heard: list[tuple[str, str]]) -> None:
        self.name = name
        self._heard = heard

    async def say(self, text: str) -> None:
        self._heard.append((self.name, text))


async def test_each_beat_goes_to_the_speakers_of_that_moment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reload that rebuilt the sinks between two beats: the second beat reaches the new
    sinks, not the ones built at start."""
    monkeypatch.setattr(liveness, "_RECHECK_SECONDS", 0.01)  # the fake clock moves in steps
    heard: list[tuple[str, str]] = []
    now = [datetime(2026, 11, 23, 8, 44, 59, tzinfo=IST)]
    speakers = [Chat("before-reload", heard)]

    def compose(at: datetime) -> str:
        return f"alive at {at.astimezone(IST):%d %H:%M}"

    task = asyncio.create_task(
        liveness.run_heartbeat(time(8, 45), IST, lambda: speakers, compose, lambda: now[0])
    )
    async with asyncio.timeout(60):
        await asyncio.sleep(0)  # the task reads the clock: the first beat is due at 08:45
        now[0] = datetime(2026, 11, 23, 8, 45, tzinfo=IST)
        while not heard:
            await asyncio.sleep(0.01)
        speakers = [Chat("after-reload", heard)]
        now[0] += timedelta(days=1)
        while len(heard) < 2:
            await asyncio.sleep(0.01)
    task.cancel()
    assert heard == [
        ("before-reload", "alive at 23 08:45"),
        ("after-reload", "alive at 24 08:45"),
    ]


class ClosedConsole:
    """A speaker whose stream is gone (standard output closed under the daemon)."""

    name = "console"

    async def say(self, text: str) -> None:
        raise OSError(errno.EPIPE, "Broken pipe")


async def test_a_speaker_that_breaks_is_logged_and_the_heartbeat_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One destination failing in a way of its own (not DeliveryFailed) costs only its own
    message: the chat still hears every beat, and the next day's beat still comes."""
    monkeypatch.setattr(liveness, "_RECHECK_SECONDS", 0.01)  # the fake clock moves in steps
    heard: list[tuple[str, str]] = []
    now = [datetime(2026, 11, 23, 8, 44, 59, tzinfo=IST)]
    speakers: list[liveness.Speaker] = [ClosedConsole(), Chat("desk", heard)]
    with capture_logs() as logs:
        task = asyncio.create_task(
            liveness.run_heartbeat(
                time(8, 45), IST, lambda: speakers, lambda at: f"{at:%d}", lambda: now[0]
            )
        )
        async with asyncio.timeout(60):
            await asyncio.sleep(0)  # the task reads the clock: the first beat is due at 08:45
            now[0] += timedelta(seconds=1)
            while not heard and not task.done():
                await asyncio.sleep(0.01)
            now[0] += timedelta(days=1)
            while len(heard) < 2 and not task.done():
                await asyncio.sleep(0.01)
        finished = task.done()
        task.cancel()
    assert not finished, "the heartbeat ended"
    assert heard == [("desk", "23"), ("desk", "24")]
    failed = [e for e in logs if e["event"] == "liveness_not_delivered"]
    assert [(e["sink"], e["log_level"]) for e in failed] == [("console", "error")] * 2
    assert "Broken pipe" in failed[0]["error"]
