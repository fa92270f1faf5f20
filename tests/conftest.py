"""Shared test helpers: paths to the repository's files."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def bundled_rules() -> Path:
    """The rules.yaml shipped at the top of the repository."""
    return ROOT / "rules.yaml"
