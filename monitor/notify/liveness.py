"""The dead man's switch: messages about the daemon itself, so that its silence is noticed.

"started" when it starts, "stopping" when a signal stops it, and an optional daily "alive" at
``daemon.heartbeat``. They go straight to every Telegram chat and the text console, not through
the outbox: each speaks of the moment it is sent (a "started" delivered an hour late would lie),
so it is tried once within a bound and a failure is logged with its fix. They are not alerts:
never routed to webhook or Alertmanager receivers (Prometheus watches a dead daemon there, with
``PositionMonitorDown``), never counted as alerts, and not silenced by ``/mute``, since a muted
chat must still notice a dead daemon (README, "Dead man's switch").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from typing import Protocol

import structlog

from monitor.health import AccountStatus
from monitor.notify.base import DeliveryFailed

log = structlog.get_logger(__name__)

STARTED_SECONDS = 15.0  # the started message also probes each chat: room for one slow getMe
STOPPING_SECONDS = 3.0  # runs beside the poll drain, inside the 10 s shutdown budget
HEARTBEAT_SECONDS = 15.0
_RECHECK_SECONDS = 60.0  # the heartbeat re-reads the wall clock at least this often
_MAX_NAMED = 10  # failing accounts named in a heartbeat; the rest are counted


class Speaker(Protocol):
    """A destination that takes messages about the daemon: a Telegram chat, the console."""

    @property
    def name(self) -> str:
        """The destination's name in rules.yaml and the logs."""
        ...

    async def say(self, text: str) -> None:
        """Deliver ``text`` once; DeliveryFailed says why not."""
        ...


@dataclass(frozen=True, slots=True)
class Started:
    """What the started message says."""

    version: str
    host: str
    accounts: Sequence[str]
    rules: int
    resumed: timedelta | None  # the state file's last write this long ago; None: a new file


def started_text(started: Started) -> str:
    """``▶️ position-monitor 1.2 started on HOST: watching ...``."""
    accounts = ", ".join(started.accounts[:_MAX_NAMED])
    if len(started.accounts) > _MAX_NAMED:
        accounts += f" and {len(started.accounts) - _MAX_NAMED} more"
    state = (
        "a new state file"
        if started.resumed is None
        else f"state resumed, last written {_duration(started.resumed)} ago"
    )
    return (
        f"▶️ position-monitor {started.version} started on {started.host}: watching"
        f" {_plural(len(started.accounts), 'account')} ({accounts}),"
        f" {_plural(started.rules, 'rule')}; {state}."
    )


def stopping_text(host: str, reason: str) -> str:
    """``⏹ position-monitor stopping on HOST: SIGTERM ...``."""
    return (
        f"⏹ position-monitor stopping on {host}: {reason}. Positions are not watched until it"
        " starts again."
    )


def heartbeat_text(
    host: str,
    statuses: Sequence[AccountStatus],
    outbox_depth: int,
    now: datetime,
    zone: tzinfo,
) -> str:
    """``💓 position-monitor alive on HOST at 08:45 IST: ...``: which accounts poll, the oldest
    last good poll, and how many alerts wait for delivery."""
    failing = [s.account.id for s in statuses if s.failing]
    polled = [s for s in statuses if s.last_success is not None]
    parts = [f"{_plural(len(statuses) - len(failing), 'account')} polling"]
    if failing:
        named = ", ".join(failing[:_MAX_NAMED])
        more = f" and {len(failing) - _MAX_NAMED} more" if len(failing) > _MAX_NAMED else ""
        parts.append(f"failing: {named}{more}")
    if polled:
        oldest = min(polled, key=lambda s: s.last_success or now)
        assert oldest.last_success is not None  # noqa: S101 - narrowed by the filter  # nosec B101
        when = _clock(oldest.last_success, now, zone)
        of = f" ({oldest.account.id}, the oldest of {len(polled)})" if len(polled) > 1 else ""
        parts.append(f"last good poll {when}{of}")
    else:
        parts.append("no good poll yet")
    parts.append(f"outbox depth {outbox_depth}")
    return f"💓 position-monitor alive on {host} at {_clock(now, now, zone)}: {'; '.join(parts)}."


def next_heartbeat(now: datetime, at: time, zone: tzinfo) -> datetime:
    """The first instant after ``now`` whose local time in ``zone`` is ``at``."""
    local = now.astimezone(zone)
    due = datetime.combine(local.date(), at, tzinfo=zone)
    if due <= local:
        due = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=zone)
    return due


async def announce(speakers: Sequence[Speaker], text: str, what: str, bound: float) -> None:
    """Say ``text`` to every speaker at once, each within ``bound`` seconds; log each outcome."""
    await asyncio.gather(*(_say(speaker, text, what, bound) for speaker in speakers))


async def _say(speaker: Speaker, text: str, what: str, bound: float) -> None:
    try:
        async with asyncio.timeout(bound):
            await speaker.say(text)
    except DeliveryFailed as err:
        log.warning("liveness_not_delivered", message=what, sink=speaker.name, error=err.detail)
    except TimeoutError:
        reason = f"no answer within {bound:g} s"
        log.warning("liveness_not_delivered", message=what, sink=speaker.name, error=reason)
    except Exception as err:
        # One destination's own fault (a closed standard output): raised on, it would end the
        # heartbeat for good and leave the other speakers' outcomes unlogged.
        error = f"{type(err).__name__}: {err}"
        log.error("liveness_not_delivered", message=what, sink=speaker.name, error=error)
    else:
        log.info("liveness_delivered", message=what, sink=speaker.name)


async def run_heartbeat(
    at: time,
    zone: tzinfo,
    speakers: Callable[[], Sequence[Speaker]],
    compose: Callable[[datetime], str],
    clock: Callable[[], datetime],
) -> None:
    """Say ``compose(now)`` to ``speakers()`` every day at ``at`` in ``zone``, until cancelled.

    The speakers are asked for at each beat, since a reload may have rebuilt the sinks. The
    wall clock is read again at least every minute, so a clock that steps (NTP, a restored VM)
    moves the heartbeat with it instead of firing it at a wrong time.
    """
    due = next_heartbeat(clock(), at, zone)
    while True:
        remaining = (due - clock()).total_seconds()
        if remaining > 0:
            await asyncio.sleep(min(remaining, _RECHECK_SECONDS))
            continue
        await announce(speakers(), compose(clock()), "heartbeat", HEARTBEAT_SECONDS)
        due = next_heartbeat(max(clock(), due), at, zone)


def _clock(moment: datetime, now: datetime, zone: tzinfo) -> str:
    """``08:44:58 IST`` on the day of ``now``, else with the date."""
    local = moment.astimezone(zone)
    if local.date() == now.astimezone(zone).date():
        return local.strftime("%H:%M:%S %Z").strip()
    return local.strftime("%Y-%m-%d %H:%M %Z").strip()


def _duration(delta: timedelta) -> str:
    """``40 s``, ``4 min``, ``3 h 5 min``, ``2 d 1 h``."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60 % 60, seconds // 3600 % 24, seconds // 86400
    if seconds < 3600:
        return f"{minutes} min"
    if seconds < 86400:
        return f"{hours} h {minutes} min"
    return f"{days} d {hours} h"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' * (count != 1)}"
