"""Typed broker failures. Each maps to one poll outcome label; none carries a credential."""

from __future__ import annotations


class BrokerError(Exception):
    """A poll that produced no usable snapshot. ``outcome`` is the metric label."""

    outcome = "error"

    def __init__(self, broker: str, reason: str, *, status: int | None = None) -> None:
        super().__init__(f"{broker}: {reason}")
        self.broker = broker
        self.reason = reason
        self.status = status


class AuthExpired(BrokerError):
    """The session or token is no longer accepted; logging in again may heal it."""

    outcome = "auth_expired"


class RateLimited(BrokerError):
    """The broker asked us to slow down, optionally saying for how long."""

    outcome = "rate_limited"

    def __init__(
        self, broker: str, reason: str, *, status: int | None = None, retry_after: float | None
    ) -> None:
        super().__init__(broker, reason, status=status)
        self.retry_after = retry_after


class BrokerUnavailable(BrokerError):
    """Transport failure, timeout or a 5xx: transient, try again later."""

    outcome = "unavailable"


class BadResponse(BrokerError):
    """The broker answered, but not with something we can trust as a snapshot."""

    outcome = "bad_response"


def error_for_status(broker: str, status: int, retry_after: float | None = None) -> BrokerError:
    """Map a non-2xx HTTP status to the typed error a poll reports."""
    if status in (401, 403):
        return AuthExpired(broker, f"HTTP {status}: session not accepted", status=status)
    if status == 429:
        return RateLimited(broker, "HTTP 429: rate limited", status=status, retry_after=retry_after)
    if status >= 500:
        return BrokerUnavailable(broker, f"HTTP {status}: broker unavailable", status=status)
    return BadResponse(broker, f"HTTP {status}: unexpected status", status=status)
