"""Fixtures of the fault-injection suite: daemons with the known secrets, and the leak check
that every test of this directory passes through."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.harness import Harness


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    """The test's daemons; afterwards every one is gone and nothing secret was written."""
    h = Harness(tmp_path)
    try:
        yield h
    finally:
        for daemon in h.daemons:
            daemon.stop()
    assert_no_secret_leaks(h)


def assert_no_secret_leaks(h: Harness) -> None:
    """No watched value in any log line, alert line or file the test's daemons left."""
    lines = [line for d in h.daemons for line in (*d.log_lines, *d.stdout_lines)]
    found = [(value, line) for value in h.watched for line in lines if value in line]
    assert not found, f"secret in output: {found[:3]}"
    for path in (p for directory in h.directories for p in directory.rglob("*")):
        if not path.is_file() or path.is_symlink() or not os.access(path, os.R_OK):
            continue
        data = path.read_bytes()
        leaked = [value for value in h.watched if value.encode() in data]
        assert not leaked, f"secret written to {path}"
