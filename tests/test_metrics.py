"""The metric set a Prometheus user expects: process metrics, every labelled series at zero from
the first scrape, and each account's MTM and drawdown."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.brokers.errors import BadResponse
from monitor.config import AccountConfig, SinkConfig
from monitor.engine import LiveEngine
from monitor.health import PollOutcome
from monitor.metrics import AccountMtm, Metrics
from monitor.model import ChangeKind
from monitor.notify.base import Reason
from monitor.notify.console import ConsoleSink
from monitor.notify.outbox import Dispatcher
from monitor.poller import AccountPoller
from monitor.store import Store
from monitor.store_thread import StoreThread
from tests.prometheus import (  # noqa: F401 - prometheus_tools is a fixture
    PrometheusTools,
    prometheus_tools,
)
from tests.snapshots import ACCOUNT, IST, T0, pos, snap
from tests.test_firing_conditions import RULES
from tests.test_poller import ScriptedBroker

DAY = date(2026, 11, 23)
Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def series(registry: CollectorRegistry) -> Series:
    """Every sample of one scrape, parsed back from the exposition text."""
    text = generate_latest(registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(scraped: Series, name: str, **labels: str) -> float | None:
    return scraped.get((name, frozenset(labels.items())))


def test_every_labelled_series_exists_from_the_first_scrape(
    tmp_path: Path,
    prometheus_tools: PrometheusTools,  # noqa: F811 - the fixture imported above
) -> None:
    """Before any poll or alert: each account's outcomes, change kinds and poll duration, the
    alerts each rule can raise for it (resolved only where the rule sends it), and each sink's
    results, all at 0; process_* metrics on the injected registry; promtool's lint is clean."""
    metrics = Metrics(CollectorRegistry())
    account = AccountConfig(ACCOUNT, "kotak_neo", timedelta(seconds=5), IST)
    store = StoreThread(Store(tmp_path / "state.db"))
    engine = LiveEngine(store, RULES, [SinkConfig("console", "console")])
    AccountPoller(account, ScriptedBroker([]), engine, metrics, on_alerts=lambda: None)
    Dispatcher(store, [ConsoleSink("console")], metrics)

    scraped = series(metrics.registry)

    for outcome in PollOutcome:
        assert value(scraped, "position_monitor_polls_total", account=ACCOUNT, outcome=outcome) == 0
    for kind in ChangeKind:
        assert value(scraped, "position_monitor_changes_total", account=ACCOUNT, kind=kind) == 0
    duration = {"broker": "kotak_neo"}
    assert value(scraped, "position_monitor_poll_duration_seconds_count", **duration) == 0
    alerts = {
        (dict(labels)["rule"], dict(labels)["severity"], dict(labels)["state"])
        for name, labels in scraped
        if name == "position_monitor_alerts_total" and dict(labels)["account"] == ACCOUNT
    }
    assert alerts == {
        ("fresh-short", "warning", "firing"),
        ("loss-limit", "critical", "firing"),
        ("loss-limit", "critical", "resolved"),  # send_resolved: true
        ("size-cap", "warning", "firing"),
        ("poll_failing", "critical", "firing"),
        ("poll_recovered", "info", "firing"),
    }
    for result in ("delivered", "muted", *Reason):
        assert (
            value(scraped, "position_monitor_notifications_total", sink="console", result=result)
            == 0
        )
    assert value(scraped, "process_cpu_seconds_total") is not None
    assert value(scraped, "process_resident_memory_bytes") is not None
    assert any(name == "python_info" for name, _ in scraped)
    # No MTM is known yet: the account's MTM gauges are not exported at all.
    assert not any(name.startswith("position_monitor_account_mtm{") for name, _ in scraped)
    assert value(scraped, "position_monitor_account_mtm", account=ACCOUNT) is None
    assert value(scraped, "position_monitor_account_mtm_unknown", account=ACCOUNT) == 0
    # An account's text is its own series only: no _created twin of each counter.
    assert not [name for name, _ in scraped if name.endswith("_created")]

    lint = prometheus_tools.promtool_run(
        "check", "metrics", stdin=generate_latest(metrics.registry).decode()
    )
    assert (lint.returncode, lint.stdout + lint.stderr) == (0, "")


def mtm_gauges(metrics: Metrics) -> tuple[float | None, float | None, float | None]:
    labels = {"account": ACCOUNT}
    get = metrics.registry.get_sample_value
    return (
        get("position_monitor_account_mtm", labels),
        get("position_monitor_account_drawdown", labels),
        get("position_monitor_account_mtm_unknown", labels),
    )


def test_drawdown_is_measured_from_the_days_peak_and_unknown_mtm_keeps_the_last_value() -> None:
    """MTM 1,000 then 3,000 then -500: drawdown 3,500 from the peak. A poll with an unpriced
    row keeps both gauges and raises the flag; a new day's first MTM is its own peak."""
    metrics = Metrics(CollectorRegistry())
    gauges = AccountMtm(metrics, ACCOUNT)

    gauges.observe(DAY, snap(pos("1", 25, mtm=None)))
    assert mtm_gauges(metrics) == (None, None, 1)  # nothing known yet: nothing exported

    for mtm in (1000, 3000):
        gauges.observe(DAY, snap(pos("1", 25, mtm=mtm - 200), pos("2", 0, mtm=200)))
    assert mtm_gauges(metrics) == (3000, 0, 0)
    gauges.observe(DAY, snap(pos("1", 25, mtm=-700), pos("2", 0, mtm=200)))
    assert mtm_gauges(metrics) == (-500, 3500, 0)

    gauges.observe(DAY, snap(pos("1", 25, mtm=-9000), pos("2", 50, mtm=None)))
    assert mtm_gauges(metrics) == (-500, 3500, 1)

    gauges.observe(DAY + timedelta(days=1), snap(pos("1", 25, mtm=-800)))
    assert mtm_gauges(metrics) == (-800, 0, 0)
    last = snap(pos("1", 25, mtm=-1200))
    gauges.observe(DAY + timedelta(days=1), last)
    assert mtm_gauges(metrics) == (-1200, 400, 0)
    # The very same rows on the next day (a client hands back unchanged rows): a new peak.
    gauges.observe(DAY + timedelta(days=2), dataclasses.replace(last, taken_at=last.taken_at))
    assert mtm_gauges(metrics) == (-1200, 0, 0)


async def test_a_good_poll_moves_the_accounts_mtm_gauges(tmp_path: Path) -> None:
    """Through the poller: the MTM sum of a good poll reaches the gauges; a failed one leaves
    them alone."""
    metrics = Metrics(CollectorRegistry())
    account = AccountConfig(ACCOUNT, "kotak_neo", timedelta(seconds=5), IST)
    store = StoreThread(Store(tmp_path / "state.db"))
    engine = LiveEngine(store, RULES, [SinkConfig("console", "console")])
    broker = ScriptedBroker(
        [
            snap(pos("1", 25, mtm=4000), pos("2", -50, mtm=-1500), at=T0),
            snap(pos("1", 25, mtm=1000), pos("2", -50, mtm=-1500), at=T0 + timedelta(seconds=5)),
            BadResponse("kotak_neo", "not JSON"),
        ]
    )
    poller = AccountPoller(account, broker, engine, metrics, on_alerts=lambda: None)

    await poller.poll()
    assert mtm_gauges(metrics) == (2500, 0, 0)
    await poller.poll()
    assert mtm_gauges(metrics) == (-500, 3000, 0)
    await poller.poll()
    assert mtm_gauges(metrics) == (-500, 3000, 0)
