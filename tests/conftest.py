"""Shared test helpers: paths to the repository's files."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def bundled_rules() -> Path:
    """The rules.yaml shipped at the top of the repository."""
    return ROOT / "rules.yaml"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """For tests that configure the global logging state: put it back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in ("httpx",)}
    yield
    root.handlers, root.level = handlers, level
    logging.captureWarnings(False)
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)
    structlog.reset_defaults()
    # configure_logging caches each module's logger on its first use: a logger cached during
    # the test would keep its configuration, and escape structlog.testing.capture_logs, later.
    for name, module in list(sys.modules.items()):
        if name == "monitor" or name.startswith("monitor."):
            cached = getattr(vars(module).get("log"), "__dict__", {})
            cached.pop("bind", None)
