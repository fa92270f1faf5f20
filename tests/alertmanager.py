"""Debian's real Alertmanager 0.25 and ``amtool`` for tests, unpacked once into
``.cache/alertmanager/`` (``tests/binaries.py``).

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
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import pytest

from tests.binaries import ROOT, ServerProcess, locked, unpacked

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
    root = unpacked(PACKAGE, cache, "usr/bin/prometheus-alertmanager", "usr/bin/amtool")
    with locked(cache / ".lock"):
        _install_templates(root / _TEMPLATES_IN_PACKAGE)
    return AlertmanagerTools(root / "usr/bin/prometheus-alertmanager", root / "usr/bin/amtool")


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


class AlertmanagerServer(ServerProcess):
    """A real Alertmanager on 127.0.0.1 with clustering off; stop() and start() again keep its
    port and storage, for an outage and a return."""

    name = "Alertmanager"

    def __init__(self, tools: AlertmanagerTools, workdir: Path, config: Mapping[str, Any]) -> None:
        super().__init__(workdir / "alertmanager.log")
        self.config_file = workdir / "alertmanager.yml"
        # JSON is YAML, and needs no quoting rules of its own.
        self.config_file.write_text(json.dumps(config))
        self.command = [
            str(tools.alertmanager),
            f"--config.file={self.config_file}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",  # empty: no gossip, no peers
            "--log.level=debug",
        ]

    def start(self) -> Self:
        """Start the server and wait until it is ready."""
        super().start()
        self.wait_ready()
        return self

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
