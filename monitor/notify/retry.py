"""The retry policy of delivery, written once for every sink: after a failure, wait how long or
give up on the alert. A sink only says whether a failure is retryable."""

from __future__ import annotations

from monitor.backoff import Backoff
from monitor.notify.base import DeliveryFailed, Reason

MAX_CRASHES = 5  # times an alert may make a sink raise unexpectedly before it is parked
# A destination's Retry-After is honoured up to this many seconds, so a wrong header cannot hold
# the lane (and every alert behind it) for days.
MAX_RETRY_AFTER = 3600.0


class RetryPolicy:
    """Capped jittered backoff between attempts; parking for refusals and repeated sink bugs."""

    __slots__ = ("backoff",)

    def __init__(self, backoff: Backoff | None = None) -> None:
        self.backoff = backoff or Backoff()

    def wait(self, failures: int, retry_after: float) -> float:
        """Seconds before the next attempt after ``failures`` failed ones in a row; at least
        the wait the destination asked for, up to ``MAX_RETRY_AFTER``."""
        return max(self.backoff.delay(failures), min(retry_after, MAX_RETRY_AFTER))

    @staticmethod
    def gives_up(failure: DeliveryFailed, crashes: int) -> bool:
        """Whether the alert that met ``failure`` is parked as undeliverable.

        ``crashes`` counts the sink bugs that alert has met, this one included. Those are
        counted apart from ordinary failed attempts, so an alert that waited out a long outage
        still gets its few tries against a bug.
        """
        if failure.reason is Reason.SINK_ERROR:
            return crashes >= MAX_CRASHES
        return not failure.retryable
