"""How an account's polling stands: each poll's outcome, and a pure tracker of failing polls.

A silent monitor is the worst failure, so when good polls stop for ``alert_after`` inside the
account's trading window the tracker raises ``poll_failing`` once, and ``poll_recovered`` once
when they return. It reads no clock and does no I/O: the poller passes every time in and
commits the alerts. The one thing a restart must not lose, whether ``poll_failing`` stands
unanswered, is a flag in the store's meta table under ``failing_key``, written in the same
transaction as the alert that sets or clears it and passed back in as ``failing`` at start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from monitor.config import AccountConfig
from monitor.model import Alert, DetailValue, Severity

POLL_FAILING = "poll_failing"
POLL_RECOVERED = "poll_recovered"


class PollOutcome(StrEnum):
    """How one poll went; the value is the ``outcome`` label of the polls counter."""

    OK = "ok"
    AUTH_EXPIRED = "auth_expired"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    BAD_RESPONSE = "bad_response"
    STATE_ERROR = "state_error"  # fetched, but the state file refused the commit
    ERROR = "error"  # a bug, contained at the poll loop's edge
    DEFERRED = "deferred"  # not fetched: backing off or honouring Retry-After
    SKIPPED_BUSY = "skipped_busy"  # not started: the previous poll was still running


@dataclass(frozen=True, slots=True)
class AccountStatus:
    """How an account's polling stands, for the bot's /status."""

    account: AccountConfig
    last_success: datetime | None
    failed_polls: int  # since the last good poll
    last_reason: str  # of the last failure, redacted
    failing: bool  # poll_failing has been raised and not yet recovered


class HealthTracker:
    """One account's polling health, fed the outcome of every poll that ran."""

    def __init__(
        self,
        account: AccountConfig,
        started: datetime,
        *,
        failing: bool = False,
    ) -> None:
        self.account = account
        self.failing = failing  # poll_failing is stored and not yet answered by poll_recovered
        self.last_success: datetime | None = None  # when the last good snapshot was taken
        self.failed_polls = 0  # since the last good poll
        self.last_reason = ""  # of the last failure, redacted
        self._started = started

    def succeeded(self, now: datetime, taken_at: datetime) -> Alert | None:
        """A good poll at ``now`` of a snapshot taken at ``taken_at``; ``poll_recovered`` when
        it answers a ``poll_failing``."""
        self.last_success = taken_at
        self.failed_polls = 0
        if not self.failing:
            return None
        return _health_alert(self.account, POLL_RECOVERED, now, taken_at, 0, "")

    def failed(self, now: datetime, reason: str) -> Alert | None:
        """A failed poll at ``now``; ``poll_failing`` once the window has gone ``alert_after``
        without a good poll. ``reason`` must be redacted: it reaches the alert."""
        self.failed_polls += 1
        self.last_reason = reason
        window = self.account.window
        if self.failing or not window.is_open(now):
            return None
        # Only time inside today's window counts: a failure at the open is not a night's outage.
        since = self.last_success or self._started
        opened = window.opened_at(now)
        if opened is not None:
            since = max(since, opened)
        if now - since < self.account.failing_after:
            return None
        return _health_alert(
            self.account, POLL_FAILING, now, self.last_success, self.failed_polls, reason
        )

    def raised(self, alert: Alert) -> None:
        """``alert``, from ``succeeded`` or ``failed``, is stored. Until then it is proposed
        again on the next poll, so a write the state file refused is not lost."""
        self.failing = alert.rule == POLL_FAILING

    def ready(self, now: datetime) -> bool:
        """True outside the trading window, or when the last good poll is at most three poll
        intervals old."""
        if not self.account.window.is_open(now.astimezone(self.account.timezone)):
            return True
        last = self.last_success
        return last is not None and now - last <= 3 * self.account.poll_every

    def status(self) -> AccountStatus:
        """The account's polling health as of the last poll."""
        return AccountStatus(
            self.account, self.last_success, self.failed_polls, self.last_reason, self.failing
        )


def failing_key(account: str) -> str:
    """The store's meta key of ``account``'s failing flag ("1" while it is failing)."""
    return f"health:{account}:poll_failing"


def _health_alert(
    account: AccountConfig,
    rule: str,
    now: datetime,
    last_success: datetime | None,
    failed_polls: int,
    reason: str,
) -> Alert:
    """The daemon's own alert about an account's polling (``poll_failing``/``poll_recovered``)."""
    last = last_success.isoformat() if last_success is not None else "never"
    if rule == POLL_FAILING:
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
