"""Debian's real Alertmanager 0.25 and ``amtool`` for tests, unpacked once into ``.cache/``.

``apt-get download prometheus-alertmanager`` + ``dpkg -x``, as ``tests/prometheus.py`` does for
Prometheus: the binaries without installing the package, so no system service starts. Nothing
here skips: a machine that cannot fetch the package fails the tests that need it, with the reason.

Debian's build reads its notification templates from the fixed path
``/usr/share/prometheus/alertmanager/default.tmpl``, whatever its flags say. When that file is
absent the unpacked ``usr/share/prometheus/alertmanager/`` is copied there, which needs root
(CI runs the tests as root); anyone else installs the package once instead.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.prometheus import ROOT, download, free_port, locked

CACHE = ROOT / ".cache" / "alertmanager"
PACKAGE = "prometheus-alertmanager"
TEMPLATES = Path("/usr/share/prometheus/alertmanager")
_TEMPLATES_IN_PACKAGE = "usr/share/prometheus/alertmanager"


@dataclass(frozen=True, slots=True)
class AlertmanagerTools:
    """Paths of the unpacked binaries."""

    alertmanager: Path
    amtool: Path

    def amtool_run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run amtool (``check-config FILE``, ...); the caller asserts on the result."""
        return subprocess.run(
            [str(self.amtool), *args], capture_output=True, text=True, timeout=60, check=False
        )


def debian_alertmanager(cache: Path = CACHE) -> AlertmanagerTools:
    """The cached binaries, downloading and unpacking the package on first use, with its
    templates where Debian's build looks for them."""
    root = cache / "root"
    tools = AlertmanagerTools(root / "usr/bin/prometheus-alertmanager", root / "usr/bin/amtool")
    cache.mkdir(parents=True, exist_ok=True)
    with locked(cache / ".lock"):
        if not (tools.alertmanager.is_file() and tools.amtool.is_file()):
            _unpack(cache, root)
        if not (tools.alertmanager.is_file() and tools.amtool.is_file()):
            pytest.fail(f"{PACKAGE} holds no usr/bin/prometheus-alertmanager and usr/bin/amtool")
        _install_templates(root / _TEMPLATES_IN_PACKAGE)
    return tools


def _unpack(cache: Path, root: Path) -> None:
    with tempfile.TemporaryDirectory(dir=cache) as work:
        staging = Path(work)
        deb = download(staging, PACKAGE)
        unpacked = staging / "root"
        extract = subprocess.run(
            ["dpkg", "-x", str(deb), str(unpacked)], capture_output=True, text=True, check=False
        )
        if extract.returncode != 0:
            pytest.fail(f"dpkg -x {deb.name} failed:\n{extract.stderr.strip()}", pytrace=False)
        shutil.rmtree(root, ignore_errors=True)
        unpacked.rename(root)


def _install_templates(source: Path) -> None:
    """Copy the package's templates to the fixed path Debian's binary reads them from."""
    if (TEMPLATES / "default.tmpl").is_file():
        return
    try:
        shutil.copytree(source, TEMPLATES, dirs_exist_ok=True)
    except OSError as err:
        pytest.fail(
            f"Debian's Alertmanager reads {TEMPLATES}/default.tmpl, which is absent, and copying"
            f" it there failed ({err}); run the tests as root or install {PACKAGE} once",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def alertmanager_tools() -> AlertmanagerTools:
    """Debian's Alertmanager and amtool, cached under ``.cache/alertmanager/``."""
    return debian_alertmanager()


def webhook_config(
    receiver_url: str,
    *,
    group_wait: str = "1s",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
    resolve_timeout: str = "5m",
) -> dict[str, Any]:
    """An alertmanager.yml routing every alert to one webhook, quickly, with resolutions."""
    return {
        "global": {"resolve_timeout": resolve_timeout},
        "route": {
            "receiver": "hook",
            "group_by": ["..."],  # every alert a group of its own: one notification each
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [
            {
                "name": "hook",
                "webhook_configs": [{"url": receiver_url, "send_resolved": True, "max_alerts": 0}],
            }
        ],
    }


class AlertmanagerServer:
    """A real Alertmanager on 127.0.0.1 with clustering off; stop() and start() again keep its
    port and storage, for an outage and a return."""

    def __init__(self, tools: AlertmanagerTools, workdir: Path, config: Mapping[str, Any]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_file = workdir / "alertmanager.yml"
        # JSON is YAML, and needs no quoting rules of its own.
        self.config_file.write_text(json.dumps(config))
        self.log = workdir / "alertmanager.log"
        self.command = [
            str(tools.alertmanager),
            f"--config.file={self.config_file}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",  # empty: no gossip, no peers
            "--log.level=debug",
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> AlertmanagerServer:
        """Start the server and wait until it is ready."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        self.wait_ready()
        return self

    def logs(self) -> str:
        """What Alertmanager printed so far (every run of it)."""
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait for /-/ready; fail with Alertmanager's output if it never is."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                break
            ready = f"http://127.0.0.1:{self.port}/-/ready"
            with contextlib.suppress(OSError), urllib.request.urlopen(ready, timeout=5) as answer:
                if answer.status == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"Alertmanager never became ready; its output:\n{self.logs()}")

    def alerts(self, *filters: str, **flags: bool) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts``: the alerts it holds (``filters`` as ``name="value"``;
        ``active``, ``silenced``, ``inhibited``, ``unprocessed`` as its flags)."""
        query = [("filter", f) for f in filters]
        query += [(flag, str(value).lower()) for flag, value in flags.items()]
        url = f"http://127.0.0.1:{self.port}/api/v2/alerts?" + urllib.parse.urlencode(query)
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                body: list[dict[str, Any]] = json.load(response)
        except urllib.error.HTTPError as err:
            raise AssertionError(f"{url}: HTTP {err.code}: {err.read().decode()}") from err
        return body

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


@contextlib.contextmanager
def running_alertmanager(
    tools: AlertmanagerTools, workdir: Path, config: Mapping[str, Any]
) -> Iterator[AlertmanagerServer]:
    """A started Alertmanager, stopped on the way out."""
    server = AlertmanagerServer(tools, workdir, config)
    try:
        yield server.start()
    finally:
        server.stop()
