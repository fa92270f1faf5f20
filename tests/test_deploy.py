"""Every deploy file checked offline: the compose stack, Prometheus, Alertmanager, Grafana, systemd.

No Docker engine runs here, so the stack is checked piece by piece with the real tools: the
compose file against the Compose Specification's schema, prometheus.yml and the dashboard's
queries with Debian's promtool, alertmanager.yml (as its entrypoint renders it) with Debian's
amtool, the systemd unit with systemd-analyze.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.alertmanager import AlertmanagerTools, alertmanager_tools  # noqa: F401 - fixture
from tests.daemon_process import DaemonProcess
from tests.prometheus import PrometheusTools, prometheus_tools  # noqa: F401 - fixture
from tests.test_daemon import write_config

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
COMPOSE_SCHEMA = ROOT / "tests" / "schemas" / "compose-spec.json"
PROMETHEUS = DEPLOY / "prometheus"
ALERTMANAGER = DEPLOY / "alertmanager"
GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "position-monitor.json"
UNIT = DEPLOY / "systemd" / "position-monitor.service"
ENV_EXAMPLE = DEPLOY / "position-monitor.env.example"
# Shaped like a real one, so the entrypoint's checks pass; never a live token.
FAKE_TOKEN = "123456789:AAFakeTokenForTheDeployTests_0123456789"
FAKE_CHAT = "-1001234567890"


def _compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def _binds(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of each bind mount (short syntax, relative to deploy/)."""
    binds = {}
    for volume in service.get("volumes", []):
        source, target, *_ = str(volume).split(":")
        if source.startswith("."):
            binds[target] = (DEPLOY / source).resolve()
    return binds


def _host_path(service: str, container_path: str) -> Path:
    """The host file behind a path inside a service's container, through its bind mounts."""
    for target, source in _binds(_compose()["services"][service]).items():
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return source / Path(container_path).relative_to(target)
    raise AssertionError(f"{container_path} is not bind-mounted into {service}")


def _published(service: str) -> set[int]:
    """The container ports a service publishes."""
    ports = _compose()["services"][service].get("ports", [])
    return {int(str(mapping).rsplit(":", 1)[-1].split("/")[0]) for mapping in ports}


# --- compose ---------------------------------------------------------------------------------


def test_compose_file_follows_the_compose_specification() -> None:
    """deploy/compose.yaml validates against the vendored Compose Specification schema."""
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(_compose())
    ]
    assert errors == []


def test_the_schema_check_catches_a_misspelt_key() -> None:
    """The premise of the test above: the schema refuses what compose would refuse."""
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    document = _compose()
    document["services"]["grafana"]["helathcheck"] = {}
    assert not jsonschema.Draft7Validator(schema).is_valid(document)


def test_the_stack_has_its_four_services_on_pinned_images() -> None:
    services = _compose()["services"]
    assert set(services) == {"position-monitor", "prometheus", "alertmanager", "grafana"}
    for name, service in services.items():
        if "build" in service:
            continue
        tag = service["image"].partition(":")[2]
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: {service['image']} is not pinned"


def test_every_bind_mount_exists_and_every_volume_is_declared() -> None:
    document = _compose()
    for name, service in document["services"].items():
        for target, source in _binds(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"
            assert source.is_relative_to(ROOT), f"{name}: {source} is outside the repository"
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if not source.startswith("."):
                assert source in document["volumes"], f"{name}: volume {source} is not declared"


def test_every_port_is_published_on_the_loopback_only() -> None:
    """Nothing of the stack listens beyond the host until the operator says so."""
    for name, service in _compose()["services"].items():
        for mapping in service.get("ports", []):
            assert str(mapping).startswith("127.0.0.1:"), f"{name}: {mapping}"


def test_every_service_but_the_daemon_has_a_healthcheck() -> None:
    """The daemon's image has its own HEALTHCHECK (see tests/test_container.py)."""
    for name, service in _compose()["services"].items():
        if name != "position-monitor":
            probe = service["healthcheck"]["test"]
            port = re.search(r"127\.0\.0\.1:(\d+)/", " ".join(probe))
            assert port and int(port.group(1)) in _published(name), (name, probe)


def test_the_env_file_is_ignored_by_git_and_its_example_holds_no_value() -> None:
    """Credentials reach the daemon and Alertmanager from one untracked file."""
    services = _compose()["services"]
    for name in ("position-monitor", "alertmanager"):
        (env_file,) = services[name]["env_file"]
        assert (DEPLOY / env_file["path"]).resolve() == DEPLOY / "position-monitor.env"
        assert env_file["required"] is False  # no file: the daemon watches the simulator
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(DEPLOY / "position-monitor.env")], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0, "deploy/position-monitor.env is not ignored by git"
    settings = [
        line for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]  # fmt: skip
    assert settings == ["TELEGRAM_BOT_TOKEN=", "TELEGRAM_CHAT_ID="]
    rules = (ROOT / "rules.yaml").read_text(encoding="utf-8")
    for setting in settings:
        assert "${" + setting.rstrip("=") + "}" in rules


# --- Prometheus ------------------------------------------------------------------------------


def test_prometheus_config_and_its_rules_pass_promtool(
    prometheus_tools: PrometheusTools,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    """promtool check config on a copy of the mounted directory, rule files resolved in it."""
    copy = tmp_path / "prometheus"
    shutil.copytree(_host_path("prometheus", "/etc/prometheus"), copy)
    check = prometheus_tools.promtool_run("check", "config", str(copy / "prometheus.yml"))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 7 rules found" in check.stdout + check.stderr
    (copy / "alerts.yml").unlink()
    missing = prometheus_tools.promtool_run("check", "config", str(copy / "prometheus.yml"))
    assert missing.returncode != 0  # the premise: a rule file that does not resolve fails


def test_prometheus_scrapes_and_alerts_to_services_of_the_stack() -> None:
    """Every target of prometheus.yml is a compose service on a port it listens on."""
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8"))
    listens = {"position-monitor": 9650, "alertmanager": 9093}
    scrape = [
        t for job in config["scrape_configs"] for s in job["static_configs"] for t in s["targets"]
    ]  # fmt: skip
    alerting = [
        t for am in config["alerting"]["alertmanagers"] for s in am["static_configs"]
        for t in s["targets"]
    ]  # fmt: skip
    assert alerting == ["alertmanager:9093"]
    assert "position-monitor:9650" in scrape
    services = _compose()["services"]
    for target in scrape + alerting:
        host, port = target.split(":")
        assert host in services and listens[host] == int(port) in _published(host), target
    flag = next(a for a in services["prometheus"]["command"] if a.startswith("--config.file="))
    assert _host_path("prometheus", flag.split("=", 1)[1]) == PROMETHEUS / "prometheus.yml"


# --- Alertmanager ----------------------------------------------------------------------------


def _render(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run entrypoint.sh as compose does, with ``echo`` for Alertmanager; the rendered file."""
    config = tmp_path / "rendered.yml"
    service = _compose()["services"]["alertmanager"]
    entrypoint = service["entrypoint"]
    assert entrypoint[0] == "/bin/sh"
    script = _host_path("alertmanager", entrypoint[1])
    template = _host_path("alertmanager", "/etc/alertmanager/alertmanager.yml")
    environ = {"PATH": os.environ["PATH"], "TEMPLATE": str(template), "CONFIG": str(config), **env}
    result = subprocess.run(
        ["sh", str(script), "echo", *service["command"][1:]],
        capture_output=True, text=True, env=environ, timeout=30, check=False,
    )  # fmt: skip
    return result, config


def test_alertmanager_config_with_telegram_passes_amtool_and_routes_the_down_alert(
    alertmanager_tools: AlertmanagerTools,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    """With the env file's token and chat id, PositionMonitorDown goes to Telegram."""
    result, config = _render(tmp_path, TELEGRAM_BOT_TOKEN=FAKE_TOKEN, TELEGRAM_CHAT_ID=FAKE_CHAT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["--storage.path=/alertmanager", f"--config.file={config}"]
    assert FAKE_TOKEN not in result.stdout + result.stderr
    assert config.stat().st_mode & 0o077 == 0  # the token is readable by its owner only
    check = alertmanager_tools.amtool_run("check-config", str(config))
    assert check.returncode == 0, check.stdout + check.stderr
    (receiver,) = yaml.safe_load(config.read_text())["receivers"]
    (telegram,) = receiver["telegram_configs"]
    assert (telegram["bot_token"], telegram["chat_id"]) == (FAKE_TOKEN, int(FAKE_CHAT))
    route = alertmanager_tools.amtool_run(
        "config", "routes", "test", f"--config.file={config}",
        "alertname=PositionMonitorDown", "severity=critical", "job=position-monitor",
    )  # fmt: skip
    assert route.returncode == 0, route.stdout + route.stderr
    assert route.stdout.split() == [receiver["name"]]


def test_alertmanager_config_without_telegram_passes_amtool_and_says_why(
    alertmanager_tools: AlertmanagerTools,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    """No env file: Alertmanager still starts (UI only), and its log says what is missing."""
    result, config = _render(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "TELEGRAM_BOT_TOKEN or TELEGRAM_CHAT_ID unset" in result.stderr
    check = alertmanager_tools.amtool_run("check-config", str(config))
    assert check.returncode == 0, check.stdout + check.stderr
    document = yaml.safe_load(config.read_text())
    assert [r.get("telegram_configs") for r in document["receivers"]] == [None]
    assert document["inhibit_rules"]  # the rest of the file is intact


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"TELEGRAM_BOT_TOKEN": FAKE_TOKEN, "TELEGRAM_CHAT_ID": "@mychannel"}, "numeric chat id"),
        ({"TELEGRAM_BOT_TOKEN": 'x"; rm', "TELEGRAM_CHAT_ID": FAKE_CHAT}, "not a bot token"),
    ],
)
def test_alertmanager_entrypoint_refuses_what_would_break_the_config(
    tmp_path: Path, env: dict[str, str], says: str
) -> None:
    result, config = _render(tmp_path, **env)
    assert result.returncode == 1
    assert says in result.stderr
    assert not config.exists()


# --- Grafana ---------------------------------------------------------------------------------


def _datasources() -> list[dict[str, Any]]:
    path = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert document["apiVersion"] == 1
    datasources: list[dict[str, Any]] = document["datasources"]
    return datasources


def test_grafana_datasource_is_the_stacks_prometheus_and_the_dashboards_default() -> None:
    (source,) = _datasources()
    assert (source["type"], source["isDefault"]) == ("prometheus", True)
    url = urlsplit(source["url"])
    assert url.hostname == "prometheus" and url.port in _published("prometheus")
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    (variable,) = (v for v in dashboard["templating"]["list"] if v["type"] == "datasource")
    assert variable["query"] == source["type"]
    assert variable["current"]["value"] == source["uid"]


def test_grafana_provisions_the_dashboard_from_the_mounted_json() -> None:
    path = GRAFANA / "provisioning" / "dashboards" / "position-monitor.yml"
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    (provider,) = document["providers"]
    assert provider["type"] == "file"
    folder = provider["options"]["path"]
    assert _host_path("grafana", f"{folder}/position-monitor.json") == DASHBOARD
    assert _host_path("grafana", "/etc/grafana/provisioning") == GRAFANA / "provisioning"
    environment = _compose()["services"]["grafana"]["environment"]
    home = environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert _host_path("grafana", home) == DASHBOARD


def _panel_queries() -> dict[str, str]:
    """``"<panel title>/<refId>"`` -> its PromQL with Grafana's variables as "All" sets them."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = {}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", "1m")
            queries[f"{panel['title']}/{target['refId']}"] = re.sub(r"\$\w+", ".*", expr)
    return queries


def test_every_dashboard_query_parses_in_promtool(
    prometheus_tools: PrometheusTools,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    """Each panel query as a recording rule: promtool check rules parses every expression."""
    queries = _panel_queries()
    rules = [{"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(queries.values())]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    check = prometheus_tools.promtool_run("check", "rules", str(path))
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(rules)} rules found" in check.stdout
    rules.append({"record": "dashboard:broken", "expr": "sum by (sink) (rate(x[1m])"})
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert prometheus_tools.promtool_run("check", "rules", str(path)).returncode != 0


def _promql_test(
    tools: PrometheusTools, tmp_path: Path, series: list[dict[str, str]], cases: list[Any]
) -> None:
    """``promtool test rules`` with only ``promql_expr_test`` cases over synthetic series."""
    path = tmp_path / "dashboard_test.yml"
    test = {"interval": "1m", "input_series": series, "promql_expr_test": cases}
    path.write_text(json.dumps({"rule_files": [], "tests": [test]}))
    result = tools.promtool_run("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_delivery_failure_ratio_leaves_muted_out_and_shows_zero(
    prometheus_tools: PrometheusTools,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    """Muted deliveries are neither attempts nor failures; no failure reads 0, not no data."""
    expr = _panel_queries()["Delivery failure ratio/A"]
    base = 'position_monitor_notifications_total{job="position-monitor",instance="a:9650"'
    series = [
        {"series": base + ',sink="telegram:me",result="delivered"}', "values": "0+1x20"},
        {"series": base + ',sink="telegram:me",result="muted"}', "values": "0+5x20"},
        {"series": base + ',sink="console",result="delivered"}', "values": "0+1x20"},
        {"series": base + ',sink="console",result="network"}', "values": "0+1x20"},
        {"series": base + ',sink="idle",result="delivered"}', "values": "0x20"},
    ]
    _promql_test(prometheus_tools, tmp_path, series, [{
        "expr": expr, "eval_time": "10m",
        "exp_samples": [
            {"labels": '{sink="telegram:me"}', "value": 0},
            {"labels": '{sink="console"}', "value": 0.5},
            {"labels": '{sink="idle"}', "value": 0},
        ],
    }])  # fmt: skip


def test_time_since_last_good_poll_is_coloured_only_while_the_account_polls(
    prometheus_tools: PrometheusTools,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    """Query A (thresholds) holds accounts polling now, B (grey) those whose window is closed."""
    queries = _panel_queries()
    labels = 'job="position-monitor",instance="a:9650"'
    last = "position_monitor_last_successful_poll_timestamp_seconds"
    series = [
        # "open" polls every minute, its last good poll 30 minutes ago (all failing since).
        {"series": f'position_monitor_polls_total{{{labels},account="open",outcome="ok"}}',
         "values": "0+1x30 30+0x30"},
        {"series": f'position_monitor_polls_total{{{labels},account="open",outcome="network"}}',
         "values": "0+0x30 0+1x30"},
        {"series": f'{last}{{{labels},account="open"}}',
         "values": "0+60x30 1800+0x30"},
        # "closed" stopped polling with its window 30 minutes ago, after a good last poll.
        {"series": f'position_monitor_polls_total{{{labels},account="closed",outcome="ok"}}',
         "values": "0+1x30 30+0x30"},
        {"series": f'{last}{{{labels},account="closed"}}',
         "values": "0+60x30 1800+0x30"},
    ]  # fmt: skip
    _promql_test(prometheus_tools, tmp_path, series, [
        {"expr": queries["Time since last good poll/A"], "eval_time": "60m",
         "exp_samples": [{"labels": '{account="open"}', "value": 1800}]},
        {"expr": queries["Time since last good poll/B"], "eval_time": "60m",
         "exp_samples": [{"labels": '{account="closed"}', "value": 1800}]},
    ])  # fmt: skip
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    (panel,) = (p for p in dashboard["panels"] if p["title"] == "Time since last good poll")
    (override,) = panel["fieldConfig"]["overrides"]
    assert override["matcher"] == {"id": "byFrameRefID", "options": "B"}
    assert override["properties"] == [
        {"id": "color", "value": {"mode": "fixed", "fixedColor": "text"}}
    ]


def test_the_pnl_panel_shows_each_accounts_mtm_and_drawdown() -> None:
    queries = _panel_queries()
    pnl = {k: v for k, v in queries.items() if k.startswith("MTM and drawdown per account/")}
    names = {m for q in pnl.values() for m in re.findall(r"position_monitor_\w+", q)}
    assert names == {"position_monitor_account_mtm", "position_monitor_account_drawdown"}
    assert all(q.startswith("sum by (account) (") for q in pnl.values())


# --- systemd ---------------------------------------------------------------------------------


def _unit() -> dict[str, dict[str, list[str]]]:
    """The unit as section -> key -> values (a key may repeat), continuation lines joined."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    text = re.sub(r"\\\n\s*", " ", UNIT.read_text(encoding="utf-8"))
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            key, _, value = line.partition("=")
            current.setdefault(key, []).append(value)
    return sections


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    assert found, "systemd-analyze not found: apt-get install systemd (.ci/run installs it)"
    return found


def test_systemd_unit_runs_the_daemon_hardened_with_secrets_from_an_env_file() -> None:
    service = _unit()["Service"]
    one = {key: values[-1] for key, values in service.items()}
    command = one["ExecStart"].split()
    assert command[:2] == ["/opt/position-monitor/bin/position-monitor", "run"]
    assert command[command.index("--config") + 1] == "/etc/position-monitor/rules.yaml"
    state = command[command.index("--state") + 1]
    assert state.startswith(f"/var/lib/{one['StateDirectory']}/")  # the one writable place
    assert one["EnvironmentFile"] == "/etc/position-monitor/env"
    assert one["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert one["Restart"] == "on-failure"
    stop = one["TimeoutStopSec"]
    assert stop.endswith("s") and int(stop[:-1]) > 10  # the daemon's drain takes up to 10 s
    expected = {
        "DynamicUser": "yes", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
        "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "CapabilityBoundingSet": "",
        "MemoryDenyWriteExecute": "yes",
    }  # fmt: skip
    assert {key: one.get(key) for key in expected} == expected
    assert "@system-service" in service["SystemCallFilter"]


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    """The unit as shipped, ExecStart pointed at this venv's real position-monitor."""
    installed = Path(sys.executable).parent / "position-monitor"
    assert installed.is_file()
    unit = tmp_path / UNIT.name
    text = UNIT.read_text(encoding="utf-8")
    unit.write_text(text.replace("/opt/position-monitor/bin/position-monitor", str(installed)))
    verify = subprocess.run(
        [_systemd_analyze(), "verify", str(unit)], capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert (verify.returncode, verify.stderr) == (0, ""), verify.stderr
    unit.write_text(text.replace("/opt/position-monitor", str(tmp_path / "absent")))
    broken = subprocess.run(
        [_systemd_analyze(), "verify", str(unit)], capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert broken.returncode != 0  # the premise: verify does look at the unit


def test_systemd_security_rates_the_unit_well_exposed_no_more_than_2(tmp_path: Path) -> None:
    """``systemd-analyze security --offline``: 0 is locked down, 10 is fully exposed."""
    security = subprocess.run(
        [_systemd_analyze(), "security", "--offline=yes", "--no-pager", str(UNIT)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    score = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security.stdout)
    assert score, security.stdout + security.stderr
    assert float(score.group(1)) <= 2.0, security.stdout


PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1
# Sets the kernel's memory-deny-write-execute (what MemoryDenyWriteExecute=yes enforces) on
# itself, proves a writable and executable mapping is now refused, then becomes the daemon; the
# setting survives exec.
MDWE_LAUNCHER = f"""
import ctypes, mmap, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0:
    sys.exit("prctl(PR_SET_MDWE) failed: errno " + str(ctypes.get_errno()))
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
except PermissionError:
    os.execv(sys.argv[1], sys.argv[1:])
sys.exit("a writable and executable mapping was allowed: MDWE is not in force")
"""


def test_the_daemon_runs_under_memory_deny_write_execute(tmp_path: Path) -> None:
    """The daemon on the simulator delivers an alert with W^X enforced by the kernel."""
    process = DaemonProcess(write_config(tmp_path, ROOT / "rules.yaml"), tmp_path / "state.db")
    process.command = [sys.executable, "-c", MDWE_LAUNCHER, *process.command]
    process.start()
    try:
        process.wait_for(lambda d: len(d.alerts()) >= 1, 60, "an alert")
        assert process.terminate() == 0
    finally:
        process.stop()


# --- the dependency lock -------------------------------------------------------------------


def _pins(lock: Path) -> dict[str, tuple[str, int]]:
    """Package -> (pinned version, number of hashes) of a pip-compile --generate-hashes file."""
    pins: dict[str, tuple[str, int]] = {}
    text = re.sub(r"\\\n\s*", " ", lock.read_text(encoding="utf-8"))
    for line in text.splitlines():
        if line and not line.startswith(("#", " ")):
            requirement, *hashes = line.split(" --hash=sha256:")
            name, _, version = requirement.strip().partition("==")
            pins[name.lower().replace("_", "-")] = (version, len(hashes))
    return pins


@pytest.mark.parametrize(
    ("lock", "extras"), [("requirements.lock", ()), ("requirements-dev.lock", ("dev",))]
)
def test_the_lock_pins_every_dependency_within_pyprojects_ranges_with_hashes(
    lock: str, extras: tuple[str, ...]
) -> None:
    """What the image (requirements.lock) and make setup (-dev) install satisfies pyproject."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    wanted = [Requirement(r) for r in project["project"]["dependencies"]]
    for extra in extras:
        wanted += [Requirement(r) for r in project["project"]["optional-dependencies"][extra]]
    wanted += [Requirement(r) for r in project["build-system"]["requires"]]
    pins = _pins(ROOT / lock)
    for requirement in wanted:
        version, _ = pins[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version, prereleases=True), (requirement, version)
    assert all(hashes >= 1 for _, hashes in pins.values())


# --- make setup ------------------------------------------------------------------------------


def _fake_python(directory: Path, name: str, version: str) -> None:
    """A script answering to ``name`` that claims to be Python ``version`` and can do no more."""
    major, minor = (int(part) for part in version.split(".")[:2])
    script = directory / name
    script.write_text(
        "#!/bin/sh\n"
        f'case "$*" in *version_info*) [ {minor} -ge 11 ] && [ {major} -eq 3 ] && echo True;;'
        f" *sys.version*) echo '{version} (fake)';; esac\n"
    )
    script.chmod(0o755)


def _make(tmp_path: Path, path: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``make`` on a copy of the Makefile and its prerequisites, with the given PATH."""
    for name in ("Makefile", "pyproject.toml", "requirements-dev.lock"):
        if not (tmp_path / name).exists():
            shutil.copy(ROOT / name, tmp_path / name)
    make = shutil.which("make")
    assert make, "make not found"
    return subprocess.run(
        [make, "--no-print-directory", *args], cwd=tmp_path, capture_output=True, text=True,
        env={"PATH": path, "HOME": str(tmp_path)}, timeout=300, check=False,
    )  # fmt: skip


def _tools(tmp_path: Path) -> Path:
    """A PATH directory with the shell tools make's recipes use and no Python at all."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("sh", "grep", "rm", "touch", "echo", "cat", "true"):
        found = shutil.which(tool)
        assert found, tool
        (tools / tool).symlink_to(found)
    return tools


def test_make_setup_with_only_an_old_python_says_what_to_run(tmp_path: Path) -> None:
    tools = _tools(tmp_path)
    _fake_python(tools, "python3", "3.9.2")
    result = _make(tmp_path, str(tools), "setup")
    assert result.returncode != 0
    assert "needs Python 3.11 or newer" in result.stderr
    assert "make PYTHON=python3.11 setup" in result.stderr
    assert not (tmp_path / ".venv").exists()  # nothing half-made for a retry to trip on


def test_make_setup_picks_the_newest_suitable_python_on_path(tmp_path: Path) -> None:
    tools = _tools(tmp_path)
    _fake_python(tools, "python3", "3.9.2")
    _fake_python(tools, "python3.12", "3.12.8")
    _fake_python(tools, "python3.11", "3.11.9")
    dry = _make(tmp_path, str(tools), "-n", "setup")
    assert dry.returncode == 0, dry.stderr
    assert "python3.12 -m venv .venv" in dry.stdout
    assert "touch .venv/.installed-python3.12" in dry.stdout


@pytest.mark.parametrize("leftover", ["another_python", "no_pip"])
def test_make_setup_rebuilds_a_venv_it_cannot_trust(tmp_path: Path, leftover: str) -> None:
    """A venv of another Python, or one that never got pip, is made again (pip stubbed out)."""
    tools = _tools(tmp_path)
    python = Path(sys.executable).resolve()
    (tools / "python3.11").symlink_to(python)
    venv = tmp_path / ".venv"
    if leftover == "another_python":
        (venv / "bin").mkdir(parents=True)
        _fake_python(venv / "bin", "python", "3.9.2")
    else:
        subprocess.run([str(python), "-m", "venv", "--without-pip", str(venv)], check=True)
    result = _make(tmp_path, str(tools), "setup", "PYTHON=python3.11", "PIP=true")
    assert result.returncode == 0, result.stdout + result.stderr
    check = subprocess.run(
        [str(venv / "bin/python"), "-c", "import sys, pip; print(sys.version)"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert check.stdout.strip() == sys.version, check.stderr
    assert (venv / ".installed-python3.11").exists()
    again = _make(tmp_path, str(tools), "setup", "PYTHON=python3.11", "PIP=true")
    assert (again.returncode, again.stdout) == (0, "make: Nothing to be done for 'setup'.\n")
