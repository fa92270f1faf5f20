"""Debian's libfaketime for tests, unpacked once into ``.cache/``: a subprocess started with
``faketime_env(at)`` sees its wall clock start at ``at`` and run on at normal speed.

``apt-get download libfaketime`` + ``dpkg -x``, as ``tests/prometheus.py`` does for Prometheus.
Nothing here skips: a machine that cannot fetch the package fails the tests that need it.
"""

from __future__ import annotations

import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.prometheus import ROOT, download, locked

CACHE = ROOT / ".cache" / "faketime"
PACKAGE = "libfaketime"
LIBRARY = "usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"


def libfaketime(cache: Path = CACHE) -> Path:
    """The cached library, downloading and unpacking the package on first use."""
    library = cache / "root" / LIBRARY
    cache.mkdir(parents=True, exist_ok=True)
    with locked(cache / ".lock"):
        if library.is_file():
            return library
        with tempfile.TemporaryDirectory(dir=cache) as work:
            deb = download(Path(work), PACKAGE)
            extract = subprocess.run(
                ["dpkg", "-x", str(deb), str(cache / "root")],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if extract.returncode != 0 or not library.is_file():
                pytest.fail(f"dpkg -x {deb.name} failed:\n{extract.stderr}", pytrace=False)
    return library


def faketime_env(at: datetime) -> dict[str, str]:
    """Environment variables that start a subprocess's clocks at ``at``."""
    start = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return {"LD_PRELOAD": str(libfaketime()), "FAKETIME": f"@{start}", "TZ": "UTC"}
