"""deploy/k8s/: every manifest validated offline against the Kubernetes schema (strict: an
unknown field fails), and cross-checked against the daemon, the ConfigMap and the image."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from monitor import cli, config
from monitor.http import make_app

K8S = Path(__file__).parent.parent / "deploy" / "k8s"
DOCKERFILE = K8S.parent.parent / "Dockerfile"
KUBERNETES_VERSION = "1.33.0"  # the oldest release still maintained upstream when pinned
VALIDATOR = Path(sys.executable).parent / "kubernetes-validate"
CORE = sorted([*K8S.glob("*.yaml"), *K8S.glob("example/*.yaml")])
OPTIONAL = sorted(K8S.glob("optional/*.yaml"))


def validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VALIDATOR), "--strict", "-k", KUBERNETES_VERSION, *map(str, paths)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def manifest(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((K8S / name).read_text())
    return document


def test_every_manifest_validates_strictly() -> None:
    assert {p.name for p in CORE} >= {
        "statefulset.yaml", "service.yaml", "configmap.yaml", "pdb.yaml", "secret.yaml",
    }  # fmt: skip
    result = validate(*CORE)
    assert result.returncode == 0, result.stdout + result.stderr
    for path in CORE:
        assert f"{path.relative_to(K8S.parent.parent)} passed" in result.stdout


def test_strict_validation_refuses_an_unknown_field(tmp_path: Path) -> None:
    # The premise of the test above: a misspelt field is an error, not ignored.
    broken = manifest("statefulset.yaml")
    broken["spec"]["replica"] = 3
    path = tmp_path / "statefulset.yaml"
    path.write_text(yaml.safe_dump(broken))
    assert validate(path).returncode != 0


def test_the_service_monitor_is_checked_by_hand_where_the_schema_has_no_crd() -> None:
    # kubernetes-validate ships the built-in kinds only: it says it has no ServiceMonitor
    # schema, so what ties the ServiceMonitor to the Service is checked here.
    result = validate(*OPTIONAL)
    assert "Couldn't find schema for kind ServiceMonitor" in result.stdout + result.stderr
    monitor = yaml.safe_load((K8S / "optional" / "servicemonitor.yaml").read_text())
    service = manifest("service.yaml")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    ports = {port["name"] for port in service["spec"]["ports"]}
    assert {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]} <= ports
    assert {endpoint["path"] for endpoint in monitor["spec"]["endpoints"]} == {"/metrics"}


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    """The ConfigMap's rules.yaml, as the pods see it."""
    path = tmp_path / "rules.yaml"
    path.write_text(manifest("configmap.yaml")["data"]["rules.yaml"])
    return path


def test_the_configmap_rules_pass_check(
    rules_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["check", str(rules_file)]) == 0, capsys.readouterr().err


def _container(statefulset: dict[str, Any]) -> dict[str, Any]:
    containers = statefulset["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def test_the_statefulset_runs_one_shard_per_replica() -> None:
    statefulset = manifest("statefulset.yaml")
    args = _container(statefulset)["args"]
    shard = args[args.index("--shard") + 1]
    assert shard == f"auto/{statefulset['spec']['replicas']}"
    env = {e["name"]: e for e in _container(statefulset)["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert statefulset["spec"]["serviceName"] == manifest("service.yaml")["metadata"]["name"]


def test_the_probes_and_the_port_are_the_daemons(rules_file: Path) -> None:
    statefulset = manifest("statefulset.yaml")
    container = _container(statefulset)
    app = make_app(CollectorRegistry(), list, _no_reload, lambda: False)
    routes = {resource.canonical for resource in app.router.resources()}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    probes = ("startupProbe", "livenessProbe", "readinessProbe")
    assert {container[probe]["httpGet"]["path"] for probe in probes} <= routes
    (port,) = container["ports"]
    assert {container[probe]["httpGet"]["port"] for probe in probes} == {port["name"]}
    loaded = config.load(rules_file)
    assert loaded.listen == ("0.0.0.0", port["containerPort"])  # noqa: S104 - a pod's port
    annotations = statefulset["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port["containerPort"])
    assert annotations["prometheus.io/path"] in routes
    (service_port,) = manifest("service.yaml")["spec"]["ports"]
    assert service_port["targetPort"] == port["name"]
    assert service_port["port"] == port["containerPort"]


async def _no_reload() -> list[str]:
    return []


def test_the_config_state_and_secret_are_wired(rules_file: Path) -> None:
    statefulset = manifest("statefulset.yaml")
    pod = statefulset["spec"]["template"]["spec"]
    container = _container(statefulset)
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    configmap = manifest("configmap.yaml")
    (rules_volume,) = [v for v in volumes.values() if "configMap" in v]
    assert rules_volume["configMap"]["name"] == configmap["metadata"]["name"]
    args = container["args"]
    config_path = Path(args[args.index("--config") + 1])
    assert config_path.parent == Path(mounts[rules_volume["name"]])
    assert config_path.name in configmap["data"]  # the key, mounted as a file
    # The state lives on the pod's own claim, not on the read-only root.
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    loaded = config.load(rules_file)
    assert loaded.state_path.parent == Path(mounts[claim["metadata"]["name"]])
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    # Every "${NAME}" rules.yaml references is a key of the Secret the pods read, and only those.
    secret = manifest("example/secret.yaml")
    (source,) = container["envFrom"]
    assert source["secretRef"]["name"] == secret["metadata"]["name"]
    references = set(re.findall(r"\$\{(\w+)\}", rules_file.read_text()))
    assert references == set(secret["stringData"])
    assert set(secret["stringData"].values()) == {""}  # an example without values


def test_the_pods_run_locked_down_as_the_images_user() -> None:
    statefulset = manifest("statefulset.yaml")
    pod = statefulset["spec"]["template"]["spec"]
    container = _container(statefulset)
    user = re.search(r"^USER (\d+):(\d+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert user is not None
    assert pod["securityContext"]["runAsUser"] == int(user[1])
    assert pod["securityContext"]["runAsGroup"] == int(user[2])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    hardened = container["securityContext"]
    assert hardened["readOnlyRootFilesystem"] is True
    assert hardened["allowPrivilegeEscalation"] is False
    assert hardened["capabilities"] == {"drop": ["ALL"]}
    # The only writable paths: the state claim and an emptyDir for temporary files.
    writable = {m["name"] for m in container["volumeMounts"] if not m.get("readOnly")}
    volumes = {v["name"]: v for v in pod["volumes"]}
    claims = {c["metadata"]["name"] for c in statefulset["spec"]["volumeClaimTemplates"]}
    assert writable == claims | {name for name, v in volumes.items() if "emptyDir" in v}
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}


def test_the_disruption_budget_and_service_select_the_pods() -> None:
    labels = manifest("statefulset.yaml")["spec"]["template"]["metadata"]["labels"]
    budget = manifest("pdb.yaml")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["maxUnavailable"] == 1
    service = manifest("service.yaml")
    assert service["spec"]["clusterIP"] == "None"  # headless
    assert service["spec"]["selector"].items() <= labels.items()
