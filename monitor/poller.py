"""One account's polls, coordinated: fetch, classify the outcome, count it, log transitions.

A failed poll never reaches the engine, so it cannot produce position alerts and the last good
snapshot stays the baseline. Failures are counted every time but logged once when polling
turns from good to failing, and once more when it recovers. Whether an account has been
failing long enough to alert is the health tracker's call; the poller commits what it raises.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import structlog

from monitor.backoff import Backoff
from monitor.brokers import Broker
from monitor.brokers.errors import AuthExpired, BrokerError, BrokerUnavailable, RateLimited
from monitor.config import AccountConfig
from monitor.engine import LiveEngine
from monitor.health import POLL_FAILING, POLL_RECOVERED, HealthTracker, PollOutcome
from monitor.metrics import AccountMtm, Metrics, RuleSeries
from monitor.model import Alert, AlertState, Severity, Snapshot
from monitor.pipeline import Evaluation
from monitor.recording import Recorder
from monitor.rules.base import Rule
from monitor.rules.conditions import ConditionRule
from monitor.store import StoreError

log = structlog.get_logger(__name__)

MAX_BACKOFF = 300.0  # seconds: an unavailable broker is still tried every five minutes
POLL_REQUESTS = 4  # a poll may log in (two steps), fetch positions and prices


class AccountPoller:
    """Polls one account; never runs two polls of it at once."""

    def __init__(
        self,
        account: AccountConfig,
        broker: Broker,
        engine: LiveEngine,
        metrics: Metrics,
        on_alerts: Callable[[], None],
        recorder: Recorder | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] | None = None,
        redact: Callable[[str], str] = str,
        failing: bool | None = None,
    ) -> None:
        """``failing``: the stored failing flag of the account, read by the caller (a reload,
        which must not block the loop on the state file); None reads it here, at startup."""
        self.account = account
        self._broker = broker
        self._engine = engine
        self._metrics = metrics
        metrics.track_account(
            account.id, account.broker, alert_series(engine.rules_for(account.id))
        )
        # Series every good poll touches, looked up once.
        self._duration = metrics.poll_duration.labels(account.broker)
        self._mtm = AccountMtm(metrics, account.id)
        self._polls_ok = metrics.polls.labels(account.id, PollOutcome.OK)
        self._last_success = metrics.last_success.labels(account.id)
        self._positions = metrics.positions.labels(account.id)
        # This account's share of the conditions-firing gauges, all at 0 before its first poll.
        self._firing: dict[str, int] = {}
        self._count_firing()
        self._on_alerts = on_alerts
        self._recorder = recorder
        # After failures the next polls wait: Retry-After, or capped exponential backoff.
        self._backoff = Backoff(initial=account.poll_every.total_seconds(), cap=MAX_BACKOFF)
        self._not_before = 0.0
        self._monotonic = monotonic
        self._now = clock or (lambda: datetime.now(account.timezone))
        self._last_attempt: datetime | None = None
        if failing is None:
            try:  # a poll_failing raised before a restart still waits for its poll_recovered
                failing = engine.poll_failing_raised(account.id)
            except StoreError:
                failing = False
        self.health = HealthTracker(account, self._now(), failing=failing)
        self._redact = redact  # broker error text may echo a credential back
        self._task: asyncio.Task[Any] | None = None
        # A poll is several requests (login, positions, prices): bound the whole of it too.
        self._deadline = POLL_REQUESTS * account.request_timeout.total_seconds()
        self._lock = asyncio.Lock()
        self._log = log.bind(account=account.id, broker=account.broker)
        self._resumed = False
        self._retired = False

    def retire(self) -> None:
        """The account is no longer polled: no new poll starts."""
        self._retired = True

    @property
    def retired(self) -> bool:
        """True once the account is no longer polled."""
        return self._retired

    def forget_metrics(self) -> None:
        """Take this retired account's share of the firing gauges and its series out of the
        metrics, once no poll of it is in flight."""
        self._metrics.count_firing(self._firing, dict.fromkeys(self._firing, 0))
        self._firing = {}
        self._metrics.forget_account(self.account.id)

    def recount_firing(self) -> None:
        """Count this account's firing conditions again (the rules changed)."""
        self._count_firing()

    async def poll(self) -> None:
        """Run one poll (never two at once: a second waits for the first).

        Outside the account's trading window nothing is fetched, except one poll right after
        the window closes, which records the end-of-day state.
        """
        if self._retired:  # a poll already due when the account was removed
            return
        now = self._now()
        window = self.account.window
        if not window.is_open(now):
            closed = window.last_close(now)
            if closed is None or (self._last_attempt is not None and self._last_attempt >= closed):
                return
        if self._monotonic() < self._not_before:
            self._count(PollOutcome.DEFERRED)
            return
        async with self._lock:
            self._last_attempt = now
            started = time.perf_counter()
            self._task = asyncio.current_task()
            try:
                outcome, health_alert = await self._refresh(now)
            except asyncio.CancelledError:
                # Shutdown outlasted this poll: nothing of it was committed unless its commit
                # had already started on the store's thread (see LiveEngine.ingest).
                self._log.info("poll_cancelled")
                return
            finally:
                self._task = None
            if health_alert is not None:
                await self._raise(health_alert)
            self._count(outcome)
            self._duration.observe(time.perf_counter() - started)

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

    async def _refresh(self, now: datetime) -> tuple[PollOutcome, Alert | None]:
        """Fetch, evaluate and commit one poll; how it went, and the health alert it raises."""
        try:
            async with asyncio.timeout(self._deadline):
                snapshot = await self._broker.fetch()
            self._record(snapshot.taken_at, None)
            # The state a previous run left, for the first poll's log line only.
            before = None if self._resumed else await self._engine.resume(snapshot.account)
            evaluation = await self._engine.ingest(snapshot, self.account.timezone)
        except (TimeoutError, BrokerError) as caught:
            err = (
                caught
                if isinstance(caught, BrokerError)
                else BrokerUnavailable(self.account.broker, f"poll took over {self._deadline:g}s")
            )
            self._record(self._now(), err)
            outcome = PollOutcome(err.outcome)
            health_alert = self._failed(now, outcome, err.reason, status=err.status)
            self._defer(err)
            return outcome, health_alert
        except StoreError as err:
            self._metrics.state_failures.inc()
            return PollOutcome.STATE_ERROR, self._failed(now, PollOutcome.STATE_ERROR, str(err))
        except Exception as err:  # the loop edge: a bug must not stop the account's polling
            self._log.exception("poll_crashed")
            return PollOutcome.ERROR, self._failed(now, PollOutcome.ERROR, type(err).__name__)
        return PollOutcome.OK, self._succeeded(now, snapshot, before, evaluation)

    def _succeeded(
        self, now: datetime, snapshot: Snapshot, before: Snapshot | None, evaluation: Evaluation
    ) -> Alert | None:
        account = self.account.id
        failed_polls = self.health.failed_polls
        recovered = self.health.succeeded(now, snapshot.taken_at)
        self._last_success.set(snapshot.taken_at.timestamp())
        self._positions.set(len(snapshot.positions))
        if self._mtm.observe(evaluation.trading_day, evaluation.snapshot):
            self._metrics.mtm_unknown.labels(account).inc()
        if evaluation.changes:
            for kind, count in Counter(change.kind for change in evaluation.changes).items():
                self._metrics.changes.labels(account, str(kind)).inc(count)
        if failed_polls:
            self._log.info("poll_recovered", failed_polls=failed_polls)
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
        self._count_firing()
        if evaluation.alerts:
            for alert in evaluation.alerts:
                self._metrics.count_alert(alert)
            self._log.info("alerts_raised", count=len(evaluation.alerts))
            self._on_alerts()
        return recovered

    def _failed(
        self, now: datetime, outcome: PollOutcome, reason: str, *, status: int | None = None
    ) -> Alert | None:
        health_alert = self.health.failed(now, self._redact(reason))
        report = self._log.warning if self.health.failed_polls == 1 else self._log.debug
        report("poll_failed", outcome=str(outcome), status=status, reason=reason)
        return health_alert

    def _defer(self, err: BrokerError) -> None:
        """Hold off the next polls after a rate limit, an outage or refused credentials."""
        if isinstance(err, RateLimited) and err.retry_after is not None:
            # Honoured, but never longer than an outage backoff: a broken header must not
            # silence an account for days.
            delay = min(err.retry_after, MAX_BACKOFF)
        elif isinstance(err, RateLimited | BrokerUnavailable | AuthExpired):
            # Resending credentials the broker just refused, every interval, risks a lockout.
            delay = self._backoff.delay(self.health.failed_polls)
        else:
            return  # a bad response: the next scheduled poll tries again
        self._not_before = self._monotonic() + delay

    def _record(self, at: datetime, error: BrokerError | None) -> None:
        """Best effort: a line the recorder could not write is counted, the poll goes on."""
        if self._recorder is not None and not self._recorder.record(
            self.account.id, self.account.broker, at, self._broker.last_exchange, error
        ):
            self._metrics.record_failures.inc()

    async def _raise(self, alert: Alert) -> None:
        """Queue a health alert; the tracker counts it raised only once it is stored."""
        try:
            await self._engine.commit_health(alert, failing=alert.rule == POLL_FAILING)
        except StoreError as err:
            self._metrics.state_failures.inc()
            self._log.error("alert_not_stored", rule=alert.rule, error=str(err))
            return
        self.health.raised(alert)
        self._metrics.count_alert(alert)
        self._log.info("alerts_raised", count=1, rule=alert.rule)
        self._on_alerts()

    def _count_firing(self) -> None:
        firing = self._engine.firing_counts(self.account.id)
        if firing is self._firing:  # the states did not move since the last count
            return
        # A rule gone since the last count (a reload) takes this account's share with it.
        gone = dict.fromkeys(self._firing.keys() - firing.keys(), 0)
        self._metrics.count_firing(self._firing, {**firing, **gone})
        self._firing = firing

    def _count(self, outcome: PollOutcome) -> None:
        if outcome is PollOutcome.OK:
            self._polls_ok.inc()
        else:
            self._metrics.polls.labels(self.account.id, outcome).inc()


def alert_series(rules: Iterable[Rule]) -> list[RuleSeries]:
    """The alert series an account can raise: each rule's (resolved too for a condition that
    sends it) and the two health rules'."""
    series = [
        RuleSeries(POLL_FAILING, Severity.CRITICAL),
        RuleSeries(POLL_RECOVERED, Severity.INFO),
    ]
    for rule in rules:
        resolved = isinstance(rule, ConditionRule) and rule.lifecycle.send_resolved
        states = (AlertState.FIRING, AlertState.RESOLVED) if resolved else (AlertState.FIRING,)
        series.append(RuleSeries(rule.name, rule.severity, states))
    return series
