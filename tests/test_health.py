"""The health tracker: poll_failing once after alert_after in the window, poll_recovered once."""

from __future__ import annotations

from datetime import datetime, timedelta

from monitor.config import AccountConfig
from monitor.health import AccountStatus, HealthTracker, PollOutcome
from monitor.schedule import PRESETS
from tests.snapshots import ACCOUNT, IST

OPEN = datetime(2026, 11, 23, 10, 0, tzinfo=IST)  # a Monday, inside the NSE window
ACCOUNT_CONFIG = AccountConfig(
    ACCOUNT, "kotak_neo", timedelta(seconds=5), IST, window=PRESETS["nse"],
    alert_after=timedelta(seconds=30),
)  # fmt: skip


def tracker(started: datetime = OPEN, *, failing: bool = False) -> HealthTracker:
    return HealthTracker(ACCOUNT_CONFIG, started, failing=failing)


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


def test_poll_failing_once_alert_after_without_a_good_poll() -> None:
    """Failures for 30 s after the last good poll: one critical alert naming the last reason."""
    health = tracker()
    assert health.succeeded(OPEN, OPEN) is None
    assert [health.failed(OPEN + seconds(s), "HTTP 503") for s in (10, 20)] == [None, None]
    failing = health.failed(OPEN + seconds(30), "HTTP 503: broker unavailable")
    assert failing is not None
    assert (failing.rule, failing.severity.value, failing.account) == (
        "poll_failing", "critical", ACCOUNT,
    )  # fmt: skip
    assert failing.at == OPEN + seconds(30)
    assert failing.details == {
        "failed_polls": 3,
        "last_success": OPEN.isoformat(),
        "reason": "HTTP 503: broker unavailable",
    }
    health.raised(failing)
    assert health.failed(OPEN + seconds(40), "HTTP 503") is None, "raised once"


def test_poll_recovered_once_after_poll_failing() -> None:
    """The first good poll after poll_failing answers it; good polls before it raise nothing."""
    health = tracker()
    failing = health.failed(OPEN + seconds(30), "timeout")
    assert failing is not None and failing.details["last_success"] is None
    health.raised(failing)
    taken = OPEN + seconds(41)
    recovered = health.succeeded(OPEN + seconds(40), taken)
    assert recovered is not None
    assert (recovered.rule, recovered.severity.value) == ("poll_recovered", "info")
    assert recovered.at == OPEN + seconds(40)
    assert recovered.details == {"failed_polls": 0, "last_success": taken.isoformat()}
    health.raised(recovered)
    assert not health.failing
    assert health.succeeded(OPEN + seconds(45), OPEN + seconds(45)) is None


def test_an_alert_not_stored_is_proposed_again() -> None:
    """Until the poller says an alert is stored, the next poll proposes it again."""
    health = tracker()
    first = health.failed(OPEN + seconds(30), "timeout")
    second = health.failed(OPEN + seconds(40), "timeout")
    assert first is not None and second is not None
    assert second.details["failed_polls"] == 2
    health.raised(second)
    recovered = health.succeeded(OPEN + seconds(50), OPEN + seconds(50))
    assert recovered is not None
    assert health.succeeded(OPEN + seconds(55), OPEN + seconds(55)) is not None


def test_a_restored_failing_flag_neither_repeats_poll_failing_nor_forgets_recovery() -> None:
    """After a restart during an outage: no second poll_failing, and poll_recovered follows."""
    health = tracker(OPEN + seconds(600), failing=True)
    assert all(health.failed(OPEN + seconds(600 + 15 * n), "HTTP 503") is None for n in range(4))
    recovered = health.succeeded(OPEN + seconds(660), OPEN + seconds(660))
    assert recovered is not None and recovered.rule == "poll_recovered"


def test_only_time_inside_the_window_counts() -> None:
    """Started at night: failures before and at the 09:15 open count from the open."""
    night = datetime(2026, 11, 23, 2, 0, tzinfo=IST)
    health = tracker(night)
    assert health.failed(night, "timeout") is None
    opened = datetime(2026, 11, 23, 9, 15, tzinfo=IST)
    assert [health.failed(opened + seconds(s), "timeout") for s in (0, 10, 20)] == [None] * 3
    assert health.failed(opened + seconds(30), "timeout") is not None


def test_failures_outside_the_window_raise_nothing() -> None:
    """An evening outage is counted but not alerted."""
    evening = datetime(2026, 11, 23, 21, 0, tzinfo=IST)
    health = tracker(evening - timedelta(hours=1))
    assert health.failed(evening, "timeout") is None
    assert health.status().failed_polls == 1


def test_status_reports_the_last_failure_and_the_flag() -> None:
    """What /status shows: last good snapshot, failures since and the last reason."""
    health = tracker()
    health.succeeded(OPEN, OPEN - seconds(1))
    health.failed(OPEN + seconds(5), "HTTP 500 [redacted]")
    assert health.status() == AccountStatus(
        ACCOUNT_CONFIG, OPEN - seconds(1), 1, "HTTP 500 [redacted]", False
    )


def test_ready_inside_the_window_needs_a_recent_good_poll() -> None:
    """Outside the window always ready; inside, a good poll at most three intervals old."""
    health = tracker()
    assert not health.ready(OPEN), "never polled"
    health.succeeded(OPEN, OPEN)
    assert health.ready(OPEN + seconds(15))
    assert not health.ready(OPEN + seconds(16))
    assert health.ready(datetime(2026, 11, 23, 21, 0, tzinfo=IST))


def test_poll_outcomes_are_the_metric_labels() -> None:
    """The values are label values of the polls counter: renaming one breaks dashboards."""
    assert [str(outcome) for outcome in PollOutcome] == [
        "ok", "auth_expired", "rate_limited", "unavailable", "bad_response", "state_error",
        "error", "deferred", "skipped_busy",
    ]  # fmt: skip
