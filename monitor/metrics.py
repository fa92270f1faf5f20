"""Every Prometheus metric of the daemon, registered on an injected registry.

Names follow the Prometheus guide: ``position_monitor_`` prefix, base units, ``_total`` on
counters. Labels are bounded by configuration (account, rule, sink, broker); never a token,
symbol or error text.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from monitor import __version__
from monitor.model import Alert

NAMESPACE = "position_monitor"


class Metrics:
    """The daemon's metric set (README, "Metrics and health")."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.polls = Counter(
            "polls", "Polls by account and outcome: ok, a failure kind, deferred or skipped_busy.",
            ["account", "outcome"], namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
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
            "alerts", "Alerts raised, by rule, severity and state (firing or resolved).",
            ["rule", "severity", "state"], namespace=NAMESPACE, registry=registry,
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
        self.state_failures = Counter(
            "state_write_failures", "Polls whose result could not be written to the state file.",
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
        Info("build", "Version of position-monitor.", namespace=NAMESPACE, registry=registry).info(
            {"version": __version__}
        )

    def track_account(self, account: str, broker: str) -> None:
        """Export an account's series at zero before its first poll.

        A series that only appears on its first increment hides the first ``increase()`` and
        leaves "no good poll yet" invisible to alerts.
        """
        self.polls.labels(account, "ok")
        self.poll_duration.labels(broker)

    def track_sink(self, sink: str) -> None:
        """Export a sink's delivery and outbox series at zero before its first alert."""
        self.deliveries.labels(sink, "delivered")
        self.undeliverable.labels(sink)
        self.outbox_unreadable.labels(sink)
        self.outbox_depth.labels(sink).set(0)

    def count_alert(self, alert: Alert) -> None:
        """Count one raised alert."""
        self.alerts.labels(alert.rule, str(alert.severity), str(alert.state)).inc()

    def count_firing(self, before: Mapping[str, int], after: Mapping[str, int]) -> None:
        """Move each condition rule's firing gauge by one account's change from ``before`` to
        ``after``: every account adds its own count, so the gauge is their sum. A rule named
        in ``after`` is exported even at 0."""
        for rule, count in after.items():
            # Every poll calls this: a series is looked up only when it moves, or is new.
            if count != before.get(rule, -1):
                self.conditions_firing.labels(rule).inc(count - before.get(rule, 0))
