"""Every Prometheus metric of the daemon, registered on an injected registry.

Names follow the Prometheus guide: ``position_monitor_`` prefix, base units, ``_total`` on
counters. Labels are bounded by configuration (account, rule, sink, broker); never a token,
symbol or error text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from monitor import __version__
from monitor.health import PollOutcome
from monitor.model import Alert, AlertState, ChangeKind, Position, PositionKey, Severity, Snapshot
from monitor.notify.base import Reason

NAMESPACE = "position_monitor"


class Metrics:
    """The daemon's metric set (README, "Metrics and health")."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        # No ``_created`` series: they add a line to every counter and histogram series (a
        # third of an account's text) and no query or alert of ours reads them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        # The process_* and python_info series every Prometheus user expects, on this registry
        # rather than the library's global one.
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        self.polls = Counter(
            "polls", "Polls by account and outcome: ok, a failure kind, deferred or skipped_busy.",
            ["account", "outcome"], namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
        self.poll_lag = Histogram(
            "poll_lag_seconds",
            "Time from a poll's due time to its start: how far the daemon runs behind.",
            namespace=NAMESPACE, registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )  # fmt: skip
        # By broker, not account: a histogram per account would be most of the text of
        # /metrics at thousands of accounts; each account's own health is its last good poll.
        self.poll_duration = Histogram(
            "poll_duration_seconds", "Time from starting a poll to its result, by broker.",
            ["broker"], namespace=NAMESPACE, registry=registry,
            # Up to the whole-poll deadline (four request timeouts of at most 10 s each).
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40),
        )  # fmt: skip
        self.positions = Gauge(
            "positions", "Positions in the account's last good snapshot.",
            ["account"], namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
        self.changes = Counter(
            "changes", "Position changes detected, by kind (added, removed, changed).",
            ["account", "kind"], namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
        self.alerts = Counter(
            "alerts", "Alerts raised, by account, rule, severity and state (firing or resolved).",
            ["account", "rule", "severity", "state"], namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
        self.conditions_firing = Gauge(
            "conditions_firing", "Subjects (accounts or positions) a condition rule fires for now.",
            ["rule"], namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
        self.mtm_unknown = Counter(
            "mtm_unknown_polls", "Good polls with an open position whose MTM had no price.",
            ["account"], namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
        self.last_success = Gauge(
            "last_successful_poll_timestamp_seconds", "Unix time of the account's last good poll.",
            ["account"], namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
        self.account_mtm = Gauge(
            "account_mtm", "The account's MTM (sum over its positions) at its last good poll.",
            ["account"], namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
        self.account_drawdown = Gauge(
            "account_drawdown", "How far the account's MTM is below the day's peak (>= 0).",
            ["account"], namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
        self.account_mtm_unknown = Gauge(
            "account_mtm_unknown",
            "1 when the last good poll had an open position without a price: the MTM and"
            " drawdown gauges then keep their last known value.",
            ["account"], namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
        self.state_failures = Counter(
            "state_write_failures", "Polls whose result could not be written to the state file.",
            namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
        self.state_checkpoint_failures = Counter(
            "state_checkpoint_failures",
            "Checkpoints of the state file's write-ahead log that failed; while they fail, the"
            " log grows.",
            namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
        self.state_calls = Gauge(
            "state_calls_waiting", "State file calls queued or running on the store's thread.",
            namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
        self.deliveries = Counter(
            "notifications", "Alert delivery attempts by sink and result (delivered or why not).",
            ["sink", "result"], namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
        self.undeliverable = Counter(
            "undeliverable_alerts", "Alerts a sink refused for good, parked out of its outbox.",
            ["sink"], namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
        self.outbox_unreadable = Counter(
            "outbox_unreadable", "Stored alerts that do not decode, parked unsent, by sink.",
            ["sink"], namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
        self.alertmanager_resend_failures = Counter(
            "alertmanager_resend_failures",
            "Failed rounds of re-posting the conditions firing now to Alertmanager, by sink:"
            " several in a row let them expire there while they still fire.",
            ["sink"], namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
        self.outbox_depth = Gauge(
            "outbox_depth", "Alerts waiting for delivery, by sink.",
            ["sink"], namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
        self.record_failures = Counter(
            "record_failures", "Poll outcomes run --record could not write to its file.",
            namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
        self.http_refused = Counter(
            "http_refused_connections",
            "Connections to the HTTP endpoint closed at once: too many open.",
            namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
        # Named as Prometheus names its own: alerting rules written for one fit the other.
        self.reload_successful = Gauge(
            "config_last_reload_successful",
            "Whether the last configuration reload succeeded (1 after a start).",
            namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
        self.reload_success_time = Gauge(
            "config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration reload (or the start).",
            namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
        self.shard_info = Gauge(
            "shard_info", "1, labelled with this daemon's shard and the number of shards.",
            ["shard", "shards"], namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
        Info("build", "Version of position-monitor.", namespace=NAMESPACE, registry=registry).info(
            {"version": __version__}
        )

    def track_account(self, account: str, broker: str, rules: Iterable[RuleSeries] = ()) -> None:
        """Export an account's series at zero before its first poll: every poll outcome, change
        kind and poll duration, and the alerts each of ``rules`` can raise for it.

        A series that only appears on its first increment hides the first ``increase()`` and
        leaves "no good poll yet" invisible to alerts. The MTM gauges wait for a known MTM.
        """
        for outcome in PollOutcome:
            self.polls.labels(account, outcome)
        for kind in ChangeKind:
            self.changes.labels(account, kind)
        self.mtm_unknown.labels(account)
        self.poll_duration.labels(broker)
        for rule in rules:
            for state in rule.states:
                self.alerts.labels(account, rule.name, rule.severity, state)

    def forget_account(self, account: str) -> None:
        """Stop exporting a removed account's series: its last good poll must not look stale
        to an alert for as long as the daemon runs."""
        for metric in (
            self.polls, self.positions, self.changes, self.alerts,
            self.mtm_unknown, self.last_success, self.account_mtm, self.account_drawdown,
            self.account_mtm_unknown,
        ):  # fmt: skip
            metric.remove_by_labels({"account": account})

    def track_sink(self, sink: str) -> None:
        """Export a sink's delivery and outbox series at zero before its first alert: delivered,
        muted and every failure reason."""
        for result in ("delivered", "muted", *Reason):
            self.deliveries.labels(sink, result)
        self.undeliverable.labels(sink)
        self.outbox_unreadable.labels(sink)
        self.outbox_depth.labels(sink).set(0)

    def count_alert(self, alert: Alert) -> None:
        """Count one raised alert."""
        self.alerts.labels(alert.account, alert.rule, alert.severity, alert.state).inc()

    def count_firing(self, before: Mapping[str, int], after: Mapping[str, int]) -> None:
        """Move each condition rule's firing gauge by one account's change from ``before`` to
        ``after``: every account adds its own count, so the gauge is their sum. A rule named
        in ``after`` is exported even at 0."""
        for rule, count in after.items():
            # Every poll calls this: a series is looked up only when it moves, or is new.
            if count != before.get(rule, -1):
                self.conditions_firing.labels(rule).inc(count - before.get(rule, 0))


@dataclass(frozen=True, slots=True)
class RuleSeries:
    """The alert series a rule can raise for an account: its severity, and firing alone or
    also resolved."""

    name: str
    severity: Severity
    states: tuple[AlertState, ...] = (AlertState.FIRING,)


class AccountMtm:
    """One account's MTM and drawdown gauges, moved by each good poll.

    The drawdown is measured from the highest MTM of the trading day this process has seen
    (a restart starts the peak afresh). A poll whose MTM is unknown (an open position without
    a price) leaves both gauges at their last known value and sets the unknown flag; before
    the first known MTM neither gauge is exported, so no stale or NaN value is ever scraped.
    """

    __slots__ = ("_day", "_gauges", "_last", "_metrics", "_peak", "_unknown", "account")

    def __init__(self, metrics: Metrics, account: str) -> None:
        self.account = account
        self._metrics = metrics
        self._unknown = metrics.account_mtm_unknown.labels(account)
        self._unknown.set(0)
        self._day: date | None = None
        self._peak = Decimal(0)
        # The MTM and drawdown series, looked up once, at the first known MTM.
        self._gauges: tuple[Gauge, Gauge] | None = None
        # The rows last observed and whether their MTM was unknown: a poll that hands back
        # the very same rows (nothing traded, no price moved) moves nothing.
        self._last: tuple[Mapping[PositionKey, Position], bool] | None = None

    def observe(self, day: date, snapshot: Snapshot) -> bool:
        """Move the gauges by one good poll of ``day`` (carried rows count, as in the rules);
        True when its MTM is unknown."""
        positions = snapshot.positions
        if self._last is not None and self._last[0] is positions and day == self._day:
            return self._last[1]
        figures = [p.mtm for p in positions.values()]
        known = [mtm for mtm in figures if mtm is not None]
        unknown = len(known) < len(figures)
        self._last = (positions, unknown)
        if unknown:
            self._unknown.set(1)
            return True
        self._unknown.set(0)
        mtm = sum(known, Decimal(0))
        if day != self._day:
            self._day, self._peak = day, mtm
        self._peak = max(self._peak, mtm)
        if self._gauges is None:
            self._gauges = (
                self._metrics.account_mtm.labels(self.account),
                self._metrics.account_drawdown.labels(self.account),
            )
        account_mtm, drawdown = self._gauges
        account_mtm.set(float(mtm))
        drawdown.set(float(self._peak - mtm))
        return False
