"""The daemon: wires config, store, brokers, pollers, sinks and the HTTP endpoint together.

Startup refuses to run on anything it cannot honour (bad config, unreadable state file, busy
port). Shutdown on SIGTERM/SIGINT stops scheduling, lets the polls in flight finish (bounded),
flushes the outbox (bounded), closes sessions and returns, well inside 10 seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

import aiohttp
import structlog
from aiohttp import web
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CollectorRegistry

from monitor import __version__
from monitor.brokers import FORMATS, Broker
from monitor.brokers.simulator import BROKER as SIMULATOR
from monitor.brokers.simulator import Simulator
from monitor.brokers.transport import Connection, Transport
from monitor.clock_watch import watch_clock
from monitor.config import (
    AccountConfig,
    Config,
    ConfigError,
    Notify,
    resolve_notify,
    simulator_account,
)
from monitor.engine import LiveEngine
from monitor.health import AccountStatus, PollOutcome
from monitor.http import make_app, serve
from monitor.logs import Redactor
from monitor.metrics import Metrics
from monitor.model import Snapshot
from monitor.notify.base import Sink
from monitor.notify.console import ConsoleSink
from monitor.notify.outbox import Dispatcher
from monitor.notify.telegram.commands import Commands
from monitor.notify.telegram.sink import TelegramBot, TelegramChatSink
from monitor.notify.telegram.updates import CommandListener
from monitor.poller import AccountPoller
from monitor.recording import DEFAULT_MAX_BYTES, Recorder
from monitor.rules.conditions import FiringCondition
from monitor.store import Store, StoreError
from monitor.store_schema import StateFileRefused, claim_state_file
from monitor.store_thread import StoreThread

log = structlog.get_logger(__name__)

POLL_DRAIN_SECONDS = 5.0
FLUSH_SECONDS = 3.0
CLOSE_SECONDS = 1.0  # then a commit stuck on a locked file is left to the process's exit


class StartupError(Exception):
    """The daemon cannot start: the message says what to fix."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Where the daemon keeps state and listens; rules.yaml values after CLI overrides."""

    state_path: Path
    host: str
    port: int
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # by account id
    record: Path | None = None  # append every poll outcome here in the replay format
    notify: Notify | None = None  # resolved notify section; None: resolved from os.environ
    record_max_bytes: int = DEFAULT_MAX_BYTES  # then the record file is rotated to FILE.1


def make_broker(
    config: Config,
    account: AccountConfig,
    secrets: Mapping[str, str],
    transport: Transport,
    *,
    recording: bool = False,
) -> Broker:
    """The live source for an account; ``recording`` keeps each poll's exchange for
    ``run --record``."""
    if account.broker == SIMULATOR:
        return Simulator(
            account.id, seed=account.seed, tick=account.poll_every, timezone=account.timezone
        )
    live = FORMATS[account.broker].live
    assert account.base_url is not None  # noqa: S101 - type narrowing: config requires it  # nosec B101
    total = account.request_timeout.total_seconds()
    connect = min(account.connect_timeout.total_seconds(), total)
    zone = account.timezone
    connection = Connection(
        account=account.id,
        base_url=account.base_url,
        secrets=secrets,
        options=account.options,
        transport=transport,
        timeouts=aiohttp.ClientTimeout(total=total, connect=connect),
        clock=lambda: datetime.now(zone),
        recording=recording,
    )
    try:
        return live.client(connection)
    except ValueError as err:  # a credential the client cannot use, such as a bad TOTP secret
        raise ConfigError([f"{config.path}: account '{account.id}': credentials: {err}"]) from err


def make_sinks(
    notify: Notify, redact: Callable[[str], str], zones: Mapping[str, tzinfo]
) -> tuple[list[Sink], list[TelegramBot]]:
    """A sink per destination, and the Telegram bots their chats share; ``zones`` (account id
    -> zone) name the time in Telegram headers."""
    bots = {
        name: TelegramBot(name, notify.tokens[name], bot.api_url, redact=redact)
        for name, bot in notify.bots.items()
    }
    sinks: list[Sink] = []
    for sink in notify.sinks:
        if sink.bot is None:
            sinks.append(ConsoleSink(sink.name, sink.format))
        else:
            chat, bot = notify.chats[sink.name], bots[sink.bot.name]
            sinks.append(TelegramChatSink(sink.name, chat, bot, zones))
    return sinks, list(bots.values())


class _View:
    """The daemon as the bot's commands see it."""

    def __init__(self, pollers: Sequence[AccountPoller], engine: LiveEngine, rules: Sequence[str]):
        self._pollers = pollers
        self._engine = engine
        self._rules = tuple(rules)

    def statuses(self) -> list[AccountStatus]:
        return [poller.health.status() for poller in self._pollers]

    def snapshot(self, account: str) -> Snapshot | None:
        return self._engine.last_snapshot(account)

    def rule_names(self) -> Sequence[str]:
        return self._rules

    def firing_conditions(self) -> list[FiringCondition]:
        return self._engine.firing_conditions()


async def fetch_once(
    config: Config, account: AccountConfig, secrets: Mapping[str, str]
) -> Snapshot:
    """Log in and fetch one snapshot of ``account``: what ``position-monitor snapshot`` shows."""
    transport = Transport()
    broker = make_broker(config, account, secrets, transport)
    transport.open()
    try:
        return await broker.fetch()
    finally:
        await broker.close()
        await transport.close()


class Daemon:
    """Everything one running daemon owns, started and stopped in order."""

    def __init__(self, config: Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        accounts = config.accounts or (simulator_account(config),)
        notify = settings.notify or resolve_notify(config, os.environ)  # before taking the lock
        # One HTTP session for every broker, opened in start(): shared pools, one place to close.
        self._transport = Transport()
        self.brokers = [
            make_broker(
                config, account, settings.secrets.get(account.id, {}), self._transport,
                recording=settings.record is not None,
            )
            for account in accounts
        ]  # fmt: skip
        self.registry = CollectorRegistry()
        self.metrics = Metrics(self.registry)
        try:
            self._state_lock = claim_state_file(settings.state_path)
        except StateFileRefused as err:
            raise StartupError(f"state file {settings.state_path}: {err}") from err
        unreadable = self.metrics.outbox_unreadable
        try:
            store = Store(
                settings.state_path, on_unreadable=lambda sink: unreadable.labels(sink).inc()
            )
        except StoreError as err:
            os.close(self._state_lock)
            raise StartupError(str(err)) from err
        # Opened here, used from now on only by its own thread: see docs/architecture.md.
        self.store = StoreThread(store, queued=self.metrics.state_calls.inc)
        secrets = [v for values in settings.secrets.values() for v in values.values()]
        redact = Redactor([*secrets, *notify.tokens.values()]).scrub
        zones = {account.id: account.timezone for account in accounts}
        self.sinks, self.bots = make_sinks(notify, redact, zones)
        self.dispatcher = Dispatcher(self.store, self.sinks, self.metrics)
        engine = LiveEngine(self.store, config.rules, notify.sinks)
        self._skipped_bots = notify.skipped
        self.recorder = None
        if settings.record is not None:
            try:
                self.recorder = Recorder(settings.record, secrets, settings.record_max_bytes)
            except OSError as err:
                self.store.close_unused()
                os.close(self._state_lock)
                raise StartupError(f"--record {settings.record}: {err.strerror}") from err
        self.pollers = [
            AccountPoller(
                account,
                broker,
                engine,
                self.metrics,
                self.dispatcher.wake,
                self.recorder,
                holidays=config.holidays,
                redact=Redactor(settings.secrets.get(account.id, {}).values()).scrub,
            )
            for account, broker in zip(accounts, self.brokers, strict=True)
        ]
        zone = config.timezone or accounts[0].timezone
        view = _View(self.pollers, engine, [r.name for r in config.rules])
        commands = Commands(view, self.store, self.store)
        self.listeners = [
            CommandListener(
                bot,
                [s for s in self.sinks if isinstance(s, TelegramChatSink) and s.bot is bot],
                commands,
                self.store,
                zone,
                clock=lambda: datetime.now(UTC),
            )
            for bot in self.bots
            if notify.bots[bot.name].commands
        ]
        self._tasks: list[asyncio.Task[None]] = []
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.port = settings.port
        self._runner: web.AppRunner | None = None
        self._delivery: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listen, schedule every account's polls and start delivering."""
        settings = self.settings
        try:
            app = make_app(self.registry, [poller.health for poller in self.pollers])
            self._runner, self.port = await serve(
                app, settings.host, settings.port, self.metrics.http_refused
            )
        except OSError as err:
            self.store.close_unused()
            os.close(self._state_lock)
            raise StartupError(f"cannot listen on {settings.host}:{settings.port}: {err}") from err

        def skipped(event: JobSubmissionEvent) -> None:
            self.metrics.polls.labels(event.job_id, PollOutcome.SKIPPED_BUSY).inc()

        self.scheduler.add_listener(skipped, EVENT_JOB_MAX_INSTANCES)
        now = datetime.now(UTC)
        for poller in self.pollers:
            every = poller.account.poll_every.total_seconds()
            # A random sub-interval offset keeps many accounts from polling in lockstep.
            spread = random.uniform(0, min(1.0, every))  # noqa: S311 - spread, not a secret  # nosec B311
            offset = timedelta(seconds=spread)
            self.scheduler.add_job(
                poller.poll,
                IntervalTrigger(seconds=every, timezone=UTC, start_date=now + offset),
                id=poller.account.id,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
                next_run_time=now + offset,
            )
        self._transport.open()
        self.scheduler.start()
        self._delivery = asyncio.create_task(self.dispatcher.run(), name="dispatcher")
        self._tasks = [
            asyncio.create_task(watch_clock(self.scheduler), name="clock-watch"),
            *(
                asyncio.create_task(listener.run(), name=f"commands-{listener.bot_name}")
                for listener in self.listeners
            ),
        ]
        for task in (self._delivery, *self._tasks):
            task.add_done_callback(_log_if_crashed)
        for name in self._skipped_bots:
            log.info("telegram_not_configured", sink=name, hint="its variables are unset")
        if not self.sinks:
            log.warning("no_sinks", hint="alerts are stored but go nowhere: configure notify")
        log.info(
            "daemon_started",
            version=__version__,
            accounts=[p.account.id for p in self.pollers],
            rules=[r.name for r in self.config.rules],
            sinks=[s.name for s in self.sinks],
            state=str(settings.state_path),
            listen=f"{settings.host}:{self.port}",
        )

    async def stop(self) -> None:
        """Stop scheduling, finish polls in flight, flush the outbox, release everything."""
        log.info("daemon_stopping")
        self.scheduler.pause()
        for task in self._tasks:  # the clock watch and the bots' command loops
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(POLL_DRAIN_SECONDS):
                await asyncio.gather(*(p.wait_idle() for p in self.pollers))
        # Whatever is still polling is cancelled before anything it uses is closed.
        await asyncio.gather(*(p.cancel() for p in self.pollers))
        self.scheduler.shutdown(wait=False)
        if self._delivery is not None:
            self._delivery.cancel()
            # A dispatcher that died of a bug has logged it; shutdown still flushes and closes.
            await asyncio.gather(self._delivery, return_exceptions=True)
        try:
            async with asyncio.timeout(FLUSH_SECONDS):
                await self.dispatcher.flush()
        except TimeoutError:
            log.warning("flush_timed_out")
        except Exception:  # shutdown must still close everything below
            log.exception("flush_failed")
        if self._runner is not None:
            await self._runner.cleanup()
        for broker in self.brokers:
            await broker.close()
        await self._transport.close()
        if self.recorder is not None:
            self.recorder.close()
        for sink in self.sinks:
            await sink.close()
        for bot in self.bots:
            with contextlib.suppress(Exception):  # closing must not stop the shutdown
                await bot.close()
        await self.store.close(CLOSE_SECONDS)
        os.close(self._state_lock)
        log.info("daemon_stopped")


def _log_if_crashed(task: asyncio.Task[None]) -> None:
    """A background task should run until stop(): say so loudly if one ended of an error."""
    if not task.cancelled() and task.exception() is not None:
        log.error("task_crashed", task=task.get_name(), error=repr(task.exception()))


def reload_not_supported(config: Config) -> None:
    """SIGHUP: rules.yaml is read once, at start. Say so and keep running on it; the default
    action of SIGHUP would end the daemon without flushing its outbox."""
    log.warning(
        "reload_not_supported",
        config=str(config.path),
        hint="rules.yaml is read only at start: check it with `position-monitor check`, then"
        " restart the daemon to apply it",
    )


async def run(config: Config, settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set or SIGTERM/SIGINT arrives; raise StartupError or ConfigError."""
    stop = stop or asyncio.Event()
    daemon = Daemon(config, settings)
    await daemon.start()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload_not_supported, config)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        await daemon.stop()
