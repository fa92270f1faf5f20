"""Every Prometheus metric of the daemon, registered on an injected registry.

Names follow the Prometheus guide: ``position_monitor_`` prefix, base units, ``_total`` on
counters. Labels are bounded by configuration (account, rule, sink, broker); never a token,
symbol or error text.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from monitor import __version__

NAMESPACE = "position_monitor"


class Metrics:
    """The daemon's metric set (DESIGN section 6)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.polls = Counter(
            "polls", "Account polls by outcome (ok or the failure kind).",
            ["account", "outcome"], namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
        self.poll_duration = Histogram(
            "poll_duration_seconds", "Time from starting a poll to its committed result.",
            ["broker"], namespace=NAMESPACE, registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
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
            "alerts", "Alerts raised by rule and severity.",
            ["rule", "severity"], namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
        self.mtm_unknown = Counter(
            "mtm_unknown_polls", "Good polls with an open position whose MTM had no price.",
            ["account"], namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
        self.last_success = Gauge(
            "last_successful_poll_timestamp_seconds", "Unix time of the last good poll.",
            ["account"], namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
        self.state_failures = Counter(
            "state_write_failures", "Polls whose result could not be written to the state file.",
            namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
        self.deliveries = Counter(
            "notifications", "Alert deliveries by sink and result (delivered or the reason).",
            ["sink", "result"], namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
        self.outbox_depth = Gauge(
            "outbox_depth", "Alerts waiting for delivery, by sink.",
            ["sink"], namespace=NAMESPACE, registry=registry,
        )  # fmt: skip
        Info("build", "Version of position-monitor.", namespace=NAMESPACE, registry=registry).info(
            {"version": __version__}
        )
