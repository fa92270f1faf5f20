"""Debian's real ``prometheus`` and ``promtool`` for tests, unpacked once into ``.cache/``.

``apt-get download prometheus`` + ``dpkg -x``: the binaries without installing the package, so
no system service starts. Nothing here skips: a machine that cannot fetch the package fails the
tests that need it, with the reason.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "prometheus"
PACKAGE = "prometheus"


@dataclass(frozen=True, slots=True)
class PrometheusTools:
    """Paths of the unpacked binaries."""

    prometheus: Path
    promtool: Path

    def promtool_run(
        self, *args: str, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run promtool; the caller asserts on the result."""
        return subprocess.run(
            [str(self.promtool), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def _apt(*args: str, cwd: Path, package: str = PACKAGE) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        return subprocess.run(
            ["apt-get", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300,
            check=False,
        )  # fmt: skip
    except FileNotFoundError:
        pytest.fail(
            f"apt-get not found: these tests need Debian's '{package}' package"
            f" (apt-get download {package}); run them on Debian or Ubuntu",
            pytrace=False,
        )


def download(into: Path, package: str = PACKAGE) -> Path:
    """``apt-get download PACKAGE`` into ``into``; ``apt-get update`` first if needed."""
    result = _apt("download", package, cwd=into, package=package)
    if result.returncode != 0:
        # A fresh container has empty package lists: apt knows of no 'prometheus' until updated.
        if os.geteuid() != 0:
            pytest.fail(
                f"apt-get download {package} failed and only root can run apt-get update:\n"
                f"{result.stderr.strip()}\nRun 'sudo apt-get update' once, or run the tests as"
                " root.",
                pytrace=False,
            )
        update = _apt("update", "-qq", cwd=into, package=package)
        if update.returncode != 0:
            pytest.fail(
                f"apt-get download {package} failed, and so did apt-get update; these tests"
                f" need Debian's package from a mirror:\n{update.stderr.strip()}",
                pytrace=False,
            )
        result = _apt("download", package, cwd=into, package=package)
    debs = sorted(into.glob(f"{package}_*.deb"))
    if result.returncode != 0 or not debs:
        pytest.fail(
            f"apt-get download {package} failed (exit {result.returncode}); these tests"
            f" need Debian's package from a mirror:\n{result.stderr.strip()}",
            pytrace=False,
        )
    return debs[-1]


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock: two test runs must not unpack into the cache at once."""
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def debian_prometheus(cache: Path = CACHE) -> PrometheusTools:
    """The cached binaries, downloading and unpacking the package on first use."""
    root = cache / "root"
    tools = PrometheusTools(root / "usr/bin/prometheus", root / "usr/bin/promtool")
    cache.mkdir(parents=True, exist_ok=True)
    with locked(cache / ".lock"):
        if tools.prometheus.is_file() and tools.promtool.is_file():
            return tools
        with tempfile.TemporaryDirectory(dir=cache) as work:
            staging = Path(work)
            deb = download(staging)
            unpacked = staging / "root"
            extract = subprocess.run(
                ["dpkg", "-x", str(deb), str(unpacked)], capture_output=True, text=True, check=False
            )
            if extract.returncode != 0:
                pytest.fail(f"dpkg -x {deb.name} failed:\n{extract.stderr.strip()}", pytrace=False)
            shutil.rmtree(root, ignore_errors=True)
            unpacked.rename(root)
    if not (tools.prometheus.is_file() and tools.promtool.is_file()):
        pytest.fail(f"{PACKAGE} package holds no usr/bin/prometheus and usr/bin/promtool")
    return tools


@pytest.fixture(scope="session")
def prometheus_tools() -> PrometheusTools:
    """Debian's prometheus and promtool, cached under ``.cache/prometheus/``."""
    return debian_prometheus()


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrometheusServer:
    """A real Prometheus on 127.0.0.1 scraping one target every second."""

    def __init__(
        self,
        tools: PrometheusTools,
        workdir: Path,
        target: str,
        job: str,
        rule_files: Sequence[Path] = (),
    ) -> None:
        self.port = free_port()
        config = workdir / "prometheus.yml"
        config.write_text(
            json.dumps(  # JSON is YAML, and needs no quoting rules of its own
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(path) for path in rule_files],
                    "scrape_configs": [
                        {"job_name": job, "static_configs": [{"targets": [target]}]}
                    ],
                }
            )
        )
        self.log = workdir / "prometheus.log"
        self.command = [
            str(tools.prometheus),
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> PrometheusServer:
        """Start the server; wait_ready() before querying."""
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        return self

    def logs(self) -> str:
        """What Prometheus printed so far."""
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait for /-/ready; fail with Prometheus's output if it never is."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                break
            with contextlib.suppress(OSError):
                url = f"http://127.0.0.1:{self.port}/-/ready"
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        return
            time.sleep(0.1)
        raise AssertionError(f"Prometheus never became ready; its output:\n{self.logs()}")

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>``; the ``data`` of a successful answer."""
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                body = json.load(response)
        except urllib.error.HTTPError as err:
            raise AssertionError(f"{url}: HTTP {err.code}: {err.read().decode()}") from err
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query through the HTTP API; the result vector."""
        result: list[dict[str, Any]] = self.api("query", query=promql)["result"]
        return result

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
