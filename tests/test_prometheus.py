"""The daemon against Debian's real Prometheus: lint, a live scrape, alert rules, dashboard.

One daemon (the simulator, polling every 500 ms) and one Prometheus scraping it every second
serve the whole module; the binaries come from ``tests/prometheus.py``.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.daemon_process import DaemonProcess
from tests.prometheus import (  # noqa: F401 - prometheus_tools is a fixture
    ROOT,
    PrometheusServer,
    PrometheusTools,
    prometheus_tools,
)
from tests.test_daemon import write_config

JOB = "position-monitor"  # the job name deploy/prometheus/alerts.yml expects
WAIT = 60  # seconds for an event to be seen: generous, since a busy machine is slow, not wrong
ALERTS = ROOT / "deploy/prometheus/alerts.yml"
ALERT_TESTS = ROOT / "deploy/prometheus/alerts_test.yml"
DASHBOARD = ROOT / "deploy/grafana/position-monitor.json"
METRIC_NAME = re.compile(r"\bposition_monitor_[a-z0-9_]+")

# The metrics README's "Metrics and health" promises, as exposed (counters with _total,
# histograms by their base name).
PROMISED_METRICS = {
    "position_monitor_polls_total",
    "position_monitor_poll_duration_seconds",
    "position_monitor_positions",
    "position_monitor_changes_total",
    "position_monitor_alerts_total",
    "position_monitor_conditions_firing",
    "position_monitor_notifications_total",
    "position_monitor_outbox_depth",
    "position_monitor_last_successful_poll_timestamp_seconds",
    "position_monitor_build_info",
    "position_monitor_account_mtm",
    "position_monitor_account_drawdown",
    "process_cpu_seconds_total",
    "python_info",
}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """The real daemon on the simulator, after its first alert was delivered."""
    workdir = tmp_path_factory.mktemp("daemon")
    cfg = write_config(workdir, ROOT / "rules.yaml")
    process = DaemonProcess(cfg, workdir / "state.db").start()
    try:
        process.wait_for(lambda d: len(d.alerts()) >= 1, WAIT, "an alert")
        yield process
        assert process.terminate() == 0
    finally:
        process.stop()


@pytest.fixture(scope="module")
def scrape(daemon: DaemonProcess) -> str:
    """One /metrics response of the running daemon."""
    with urllib.request.urlopen(f"http://127.0.0.1:{daemon.port()}/metrics", timeout=WAIT) as r:
        text: str = r.read().decode()
    return text


@pytest.fixture(scope="module")
def prometheus(
    daemon: DaemonProcess,
    prometheus_tools: PrometheusTools,  # noqa: F811 - the fixture imported above
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PrometheusServer]:
    """Real Prometheus scraping the daemon every second, with alerts.yml loaded."""
    server = PrometheusServer(
        prometheus_tools,
        tmp_path_factory.mktemp("prometheus"),
        target=f"127.0.0.1:{daemon.port()}",
        job=JOB,
        rule_files=[ALERTS],
    ).start()
    try:
        server.wait_ready(WAIT)
        yield server
    finally:
        server.stop()


def exposed_names(text: str) -> set[str]:
    """Every metric family and sample name in a text exposition."""
    names = set()
    for line in text.splitlines():
        if line.startswith(("# TYPE ", "# HELP ")):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def test_a_real_scrape_passes_promtool_check_metrics(
    scrape: str,
    prometheus_tools: PrometheusTools,  # noqa: F811 - the fixture imported above
) -> None:
    """promtool's naming lint has nothing to say, and README's metrics are all there."""
    result = prometheus_tools.promtool_run("check", "metrics", stdin=scrape)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    assert exposed_names(scrape) >= PROMISED_METRICS
    families = {n for n in exposed_names(scrape) if n.startswith("position_monitor_")}
    assert "position_monitor_poll_duration_seconds_bucket" in families


def test_prometheus_scrapes_the_daemon_and_sees_polls_increase(
    prometheus: PrometheusServer,
) -> None:
    """The real Prometheus scrapes /metrics and its query API shows the poll counter grow."""
    query = 'position_monitor_polls_total{account="sim", outcome="ok"}'
    first: float | None = None
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        result = prometheus.query(query)
        if result:
            value = float(result[0]["value"][1])
            if first is None:
                first = value
            elif value > first:
                break
        time.sleep(0.25)
    else:
        raise AssertionError(
            f"Prometheus never saw {query} increase (first value {first});"
            f" its output:\n{prometheus.logs()}"
        )
    (up,) = prometheus.query(f'up{{job="{JOB}"}}')
    assert up["value"][1] == "1"
    assert result[0]["metric"]["job"] == JOB


def test_alert_rules_load_in_prometheus_and_evaluate_cleanly(
    prometheus: PrometheusServer,
) -> None:
    """alerts.yml evaluates against the live daemon's series without errors and fires nothing."""
    deadline = time.monotonic() + WAIT
    while True:
        rules = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
        if (
            rules
            and all(r.get("lastEvaluation", "").startswith("2") for r in rules)
            and all(r["health"] != "unknown" for r in rules)
        ):
            break
        assert time.monotonic() < deadline, f"rules never evaluated: {rules}"
        time.sleep(0.25)
    assert {r["name"]: r["health"] for r in rules} == dict.fromkeys(alert_names(), "ok")
    assert [r["name"] for r in rules if r["state"] != "inactive"] == []


def alert_names() -> list[str]:
    """The alerts defined in alerts.yml, in order."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"]]


def test_alert_rules_pass_promtool_check_and_unit_tests(
    prometheus_tools: PrometheusTools,  # noqa: F811 - the fixture imported above
) -> None:
    """promtool check rules and promtool test rules pass on deploy/prometheus."""
    check = prometheus_tools.promtool_run("check", "rules", str(ALERTS))
    assert check.returncode == 0, check.stdout + check.stderr
    unit = prometheus_tools.promtool_run("test", "rules", str(ALERT_TESTS))
    assert unit.returncode == 0, unit.stdout + unit.stderr


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    """alerts_test.yml expects each alert of alerts.yml both to fire and not to fire."""
    cases = [
        case for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
    ]  # fmt: skip
    fires = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert fires == quiet == set(alert_names())


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the dashboard's panels and template variables."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    variables = dashboard["templating"]["list"]
    exprs += [v["definition"] for v in variables if v["type"] == "query"]
    return exprs


def test_alerts_and_dashboard_use_only_metrics_the_daemon_exposes(scrape: str) -> None:
    """A renamed metric cannot silently blank a panel or disarm an alert."""
    exposed = exposed_names(scrape)
    used = set(METRIC_NAME.findall(ALERTS.read_text()))
    for expr in dashboard_queries():
        used |= set(METRIC_NAME.findall(expr))
    assert len(used) >= len(PROMISED_METRICS)
    assert used - exposed == set()


def grafana_to_promql(expr: str) -> str:
    """A dashboard query with Grafana's variables replaced as Grafana would for "All"."""
    if match := re.fullmatch(r"label_values\((.+), \w+\)", expr):
        expr = match.group(1)
    expr = expr.replace("$__rate_interval", "1m")
    return re.sub(r"\$(job|instance|account)\b", ".*", expr)


def test_the_dashboard_is_json_and_its_queries_run_on_prometheus(
    prometheus: PrometheusServer,
) -> None:
    """Valid JSON with a datasource variable; every query parses and returns data."""
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "position-monitor"
    assert all(
        t["datasource"]["uid"] == "${datasource}"
        for p in dashboard["panels"]
        for t in p.get("targets", [])
    )
    # Rates need two scrapes of the counters the dashboard reads.
    rate = f'rate(position_monitor_polls_total{{job="{JOB}"}}[1m])'
    deadline = time.monotonic() + WAIT
    while not prometheus.query(rate):
        assert time.monotonic() < deadline, f"no two scrapes; Prometheus said:\n{prometheus.logs()}"
        time.sleep(0.25)
    empty = []
    for expr in dashboard_queries():
        result: list[dict[str, Any]] = prometheus.query(grafana_to_promql(expr))
        if not result:
            empty.append(expr)
    # Only failures and rare events may have no series yet on a healthy simulator.
    # The poll-age half for closed windows is empty while the simulator polls.
    allowed = ("mtm_unknown", "state_write_failures", "unless on (account)")
    assert [e for e in empty if not any(a in e for a in allowed)] == []


def test_the_exposition_has_no_unbounded_labels(scrape: str) -> None:
    """Labels are bounded by configuration: no token, symbol or error text."""
    forbidden = {"token", "symbol", "instrument", "error", "message", "reason"}
    label_names = set(re.findall(r"[{,]([a-z_]+)=", scrape))
    assert label_names & forbidden == set()
    assert label_names <= {"account", "outcome", "broker", "le", "kind", "rule", "severity",
                           "state", "sink", "result", "version",
                           # python_info: the interpreter, one series
                           "implementation", "major", "minor", "patchlevel"}  # fmt: skip
