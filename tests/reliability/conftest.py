"""Fixtures of the fault-injection suite: daemons with the known secrets, and the leak check
that every test of this directory passes through."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.leaks import assert_no_secret_leaks
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
    assert_daemons_leaked_no_secret(h)


def assert_daemons_leaked_no_secret(h: Harness) -> None:
    """No watched value in any log line, alert line or file the test's daemons left."""
    for daemon in h.daemons:
        assert_no_secret_leaks(h.watched, *daemon.log_lines, where="the log")
        assert_no_secret_leaks(h.watched, *daemon.stdout_lines, where="the alerts")
    for path in (p for directory in h.directories for p in directory.rglob("*")):
        if not path.is_file() or path.is_symlink() or not os.access(path, os.R_OK):
            continue
        assert_no_secret_leaks(h.watched, path.read_bytes(), where=str(path))
