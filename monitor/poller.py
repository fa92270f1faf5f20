"""One account's poll loop body: fetch, evaluate, commit, count, and log transitions only.

A failed poll never reaches the engine, so it cannot produce position alerts and the last good
snapshot stays the baseline. Failures are counted every time but logged once when polling
turns from good to failing, and once more when it recovers.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import structlog

from monitor.backoff import Backoff
from monitor.brokers import Broker
from monitor.brokers.errors import AuthExpired, BrokerError, BrokerUnavailable, RateLimited
from monitor.config import AccountConfig
from monitor.engine import Engine
from monitor.metrics import Metrics
from monitor.model import Alert, DetailValue, Severity, Snapshot
from monitor.pipeline import Evaluation
from monitor.recording import Recorder
from monitor.store import StoreError

log = structlog.get_logger(__name__)

MAX_BACKOFF = 300.0  # seconds: an unavailable broker is still tried every five minutes
POLL_REQUESTS = 4  # a poll may log in (two steps), fetch positions and prices


@dataclass(frozen=True, slots=True)
class AccountStatus:
    """How an account's polling stands, for the bot's /status."""

    account: AccountConfig
    last_success: datetime | None
    failed_polls: int  # since the last good poll
    last_reason: str  # of the last failure, redacted
    failing: bool  # poll_failing has been raised and not yet recovered


class AccountPoller:
    """Polls one account; never runs two polls of it at once."""

    def __init__(
        self,
        account: AccountConfig,
        broker: Broker,
        engine: Engine,
        metrics: Metrics,
        on_alerts: Callable[[], None],
        recorder: Recorder | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        holidays: Collection[date] = (),
        clock: Callable[[], datetime] | None = None,
        redact: Callable[[str], str] = str,
    ) -> None:
        self.account = account
        self._broker = broker
        self._engine = engine
        self._metrics = metrics
        metrics.track_account(account.id, account.broker)
        # Series every good poll touches, looked up once.
        self._duration = metrics.poll_duration.labels(account.broker)
        self._polls_ok = metrics.polls.labels(account.id, "ok")
        self._last_success = metrics.last_success.labels(account.id)
        self._positions = metrics.positions.labels(account.id)
        self._on_alerts = on_alerts
        self._recorder = recorder
        # After failures the next polls wait: Retry-After, or capped exponential backoff.
        self._backoff = Backoff(initial=account.poll_every.total_seconds(), cap=MAX_BACKOFF)
        self._not_before = 0.0
        self._monotonic = monotonic
        self._holidays = holidays
        self._now = clock or (lambda: datetime.now(account.timezone))
        self._started = self._now()
        self._last_attempt: datetime | None = None
        try:  # a poll_failing raised before a restart still waits for its poll_recovered
            self._failing_alerted = engine.poll_failing_raised(account.id)
        except StoreError:
            self._failing_alerted = False
        self._last_reason = ""
        self._redact = redact  # broker error text may echo a credential back
        self._task: asyncio.Task[Any] | None = None
        # A poll is several requests (login, positions, prices): bound the whole of it too.
        self._deadline = POLL_REQUESTS * account.request_timeout.total_seconds()
        self._lock = asyncio.Lock()
        self._log = log.bind(account=account.id, broker=account.broker)
        self.last_success: datetime | None = None
        self.failed_polls = 0
        self._resumed = False

    async def poll(self) -> None:
        """Run one poll (the scheduler never starts a second one while one is in flight).

        Outside the account's trading window nothing is fetched, except one poll right after
        the window closes, which records the end-of-day state.
        """
        now = self._now()
        window = self.account.window
        if not window.is_open(now, self._holidays):
            closed = window.last_close(now, self._holidays)
            if closed is None or (self._last_attempt is not None and self._last_attempt >= closed):
                return
        if self._monotonic() < self._not_before:
            self._metrics.polls.labels(self.account.id, "deferred").inc()
            return
        async with self._lock:
            self._last_attempt = now
            started = time.perf_counter()
            self._task = asyncio.current_task()
            try:
                outcome = await self._poll_once()
            except asyncio.CancelledError:
                # Shutdown outlasted this poll: nothing of it was committed, say so quietly.
                self._log.info("poll_cancelled")
                return
            finally:
                self._task = None
            self._watch_health(now, outcome == "ok")
            if outcome == "ok":
                self._polls_ok.inc()
            else:
                self._metrics.polls.labels(self.account.id, outcome).inc()
            self._duration.observe(time.perf_counter() - started)

    def status(self) -> AccountStatus:
        """The account's polling health as of now."""
        return AccountStatus(
            self.account,
            self.last_success,
            self.failed_polls,
            self._redact(self._last_reason),
            self._failing_alerted,
        )

    async def wait_idle(self) -> None:
        """Return once no poll of this account is in flight."""
        async with self._lock:
            pass

    async def cancel(self) -> None:
        """Cancel the poll in flight, if any, and give it a second to unwind."""
        task = self._task
        if task is not None:
            task.cancel()
            await asyncio.wait([task], timeout=1.0)

    async def _poll_once(self) -> str:
        try:
            async with asyncio.timeout(self._deadline):
                snapshot = await self._broker.fetch()
            self._record(snapshot.taken_at, None)
            before = self._engine.last_snapshot(snapshot.account)
            evaluation = self._engine.ingest(snapshot, self.account.timezone)
        except (TimeoutError, BrokerError) as caught:
            err = (
                caught
                if isinstance(caught, BrokerError)
                else BrokerUnavailable(self.account.broker, f"poll took over {self._deadline:g}s")
            )
            self._record(self._now(), err)
            self._failed(err.outcome, err.reason, status=err.status)
            self._defer(err)
            return err.outcome
        except StoreError as err:
            self._metrics.state_failures.inc()
            self._failed("state_error", str(err))
            return "state_error"
        except Exception as err:  # the loop edge: a bug must not stop the account's polling
            self._log.exception("poll_crashed")
            self._failed("error", type(err).__name__)
            return "error"
        self._succeeded(snapshot, before, evaluation)
        return "ok"

    def _succeeded(
        self, snapshot: Snapshot, before: Snapshot | None, evaluation: Evaluation
    ) -> None:
        account = self.account.id
        self.last_success = snapshot.taken_at
        self._last_success.set(snapshot.taken_at.timestamp())
        self._positions.set(len(snapshot.positions))
        if evaluation.changes:
            for kind, count in Counter(change.kind for change in evaluation.changes).items():
                self._metrics.changes.labels(account, str(kind)).inc(count)
        if any(p.mtm is None for p in snapshot.positions.values()):
            self._metrics.mtm_unknown.labels(account).inc()
        if self.failed_polls:
            self._log.info("poll_recovered", failed_polls=self.failed_polls)
            self.failed_polls = 0
        if evaluation.baseline:
            self._log.info("baseline_taken", positions=len(snapshot.positions))
        elif not self._resumed and before is not None:
            # The first poll of this process, diffed against the state a previous run left.
            self._log.info(
                "poll_resumed",
                stored_at=before.taken_at.isoformat(),
                taken_at=snapshot.taken_at.isoformat(),
                changes=len(evaluation.changes),
                alerts=len(evaluation.alerts),
            )
        self._resumed = True
        if evaluation.alerts:
            for alert in evaluation.alerts:
                self._metrics.alerts.labels(alert.rule, str(alert.severity)).inc()
            self._log.info("alerts_raised", count=len(evaluation.alerts))
            self._on_alerts()

    def _defer(self, err: BrokerError) -> None:
        """Hold off the next polls after a rate limit, an outage or refused credentials."""
        if isinstance(err, RateLimited) and err.retry_after is not None:
            # Honoured, but never longer than an outage backoff: a broken header must not
            # silence an account for days.
            delay = min(err.retry_after, MAX_BACKOFF)
        elif isinstance(err, RateLimited | BrokerUnavailable | AuthExpired):
            # Resending credentials the broker just refused, every interval, risks a lockout.
            delay = self._backoff.delay(self.failed_polls)
        else:
            return  # a bad response: the next scheduled poll tries again
        self._not_before = self._monotonic() + delay

    def _record(self, at: datetime, error: BrokerError | None) -> None:
        """Best effort: a line the recorder could not write is counted, the poll goes on."""
        if self._recorder is not None and not self._recorder.record(
            self.account.id, self.account.broker, at, self._broker.last_exchange, error
        ):
            self._metrics.record_failures.inc()

    def _watch_health(self, now: datetime, ok: bool) -> None:
        """Raise ``poll_failing`` once when good polls stop inside the window, and
        ``poll_recovered`` once when they return: a silent monitor is the worst failure."""
        if ok:
            if self._failing_alerted:
                recovered = health_alert(
                    self.account, "poll_recovered", now, self.last_success, 0, ""
                )
                self._failing_alerted = not self._raise(recovered, failing=False)
            return
        if self._failing_alerted or not self.account.window.is_open(now, self._holidays):
            return
        # Only time inside today's window counts: a failure at the open is not a night's outage.
        since = self.last_success or self._started
        opened = self.account.window.opened_at(now)
        if opened is not None:
            since = max(since, opened)
        if now - since >= self.account.failing_after:
            alert = health_alert(
                self.account, "poll_failing", now, self.last_success, self.failed_polls,
                self._redact(self._last_reason),
            )  # fmt: skip
            # Marked raised only once stored: a failed write is tried again on the next poll.
            self._failing_alerted = self._raise(alert, failing=True)

    def _raise(self, alert: Alert, *, failing: bool) -> bool:
        """Queue a health alert; False when the state file refused it."""
        try:
            self._engine.raise_health_alert(alert, failing=failing)
        except StoreError as err:
            self._metrics.state_failures.inc()
            self._log.error("alert_not_stored", rule=alert.rule, error=str(err))
            return False
        self._metrics.alerts.labels(alert.rule, str(alert.severity)).inc()
        self._log.info("alerts_raised", count=1, rule=alert.rule)
        self._on_alerts()
        return True

    def _failed(self, outcome: str, reason: str, *, status: int | None = None) -> None:
        self._last_reason = reason
        self.failed_polls += 1
        if self.failed_polls == 1:
            self._log.warning("poll_failed", outcome=outcome, status=status, reason=reason)
        else:
            self._log.debug("poll_failed", outcome=outcome, status=status, reason=reason)

    def ready(self, now: datetime) -> bool:
        """True outside the trading window, or when the last good poll is at most three poll
        intervals old."""
        if not self.account.window.is_open(now.astimezone(self.account.timezone), self._holidays):
            return True
        last = self.last_success
        return last is not None and now - last <= 3 * self.account.poll_every


def health_alert(
    account: AccountConfig,
    rule: str,
    now: datetime,
    last_success: datetime | None,
    failed_polls: int,
    reason: str,
) -> Alert:
    """The daemon's own alert about an account's polling (``poll_failing``/``poll_recovered``)."""
    last = last_success.isoformat() if last_success is not None else "never"
    if rule == "poll_failing":
        severity = Severity.CRITICAL
        message = (
            f"No good poll of account {account.id} ({account.broker}) since {last}: "
            f"{failed_polls} failed polls, the last: {reason}"
        )
    else:
        severity = Severity.INFO
        message = f"Polling of account {account.id} ({account.broker}) recovered at {last}"
    details: dict[str, DetailValue] = {
        "failed_polls": failed_polls,
        "last_success": None if last_success is None else last_success.isoformat(),
    }
    if reason:
        details["reason"] = reason
    return Alert(rule, rule, severity, account.id, None, None, now, message, details)
