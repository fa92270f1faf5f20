"""Debian's libfaketime for tests, unpacked once into ``.cache/``: a subprocess started with
``faketime_env(at)`` sees its wall clock start at ``at`` and run on at normal speed.

Unpacked as ``tests/binaries.py`` unpacks every Debian package the tests use.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.binaries import ROOT, unpacked

CACHE = ROOT / ".cache" / "faketime"
PACKAGE = "libfaketime"
LIBRARY = "usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"


def libfaketime(cache: Path = CACHE) -> Path:
    """The cached library, downloading and unpacking the package on first use."""
    return unpacked(PACKAGE, cache, LIBRARY) / LIBRARY


def faketime_env(at: datetime) -> dict[str, str]:
    """Environment variables that start a subprocess's clocks at ``at``."""
    start = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return {"LD_PRELOAD": str(libfaketime()), "FAKETIME": f"@{start}", "TZ": "UTC"}
