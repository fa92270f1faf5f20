"""Debian's real ``prometheus`` and ``promtool`` for tests, unpacked once into
``.cache/prometheus/`` (``tests/binaries.py``).
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.binaries import ROOT, ServerProcess, unpacked

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


def debian_prometheus(cache: Path = CACHE) -> PrometheusTools:
    """The cached binaries, downloading and unpacking the package on first use."""
    root = unpacked(PACKAGE, cache, "usr/bin/prometheus", "usr/bin/promtool")
    return PrometheusTools(root / "usr/bin/prometheus", root / "usr/bin/promtool")


@pytest.fixture(scope="session")
def prometheus_tools() -> PrometheusTools:
    """Debian's prometheus and promtool, cached under ``.cache/prometheus/``."""
    return debian_prometheus()


class PrometheusServer(ServerProcess):
    """A real Prometheus on 127.0.0.1 scraping one target every second."""

    name = "Prometheus"

    def __init__(
        self,
        tools: PrometheusTools,
        workdir: Path,
        target: str,
        job: str,
        rule_files: Sequence[Path] = (),
    ) -> None:
        super().__init__(workdir / "prometheus.log")
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
        self.command = [
            str(tools.prometheus),
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]

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
