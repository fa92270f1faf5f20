"""Waiting on an event a test can only observe by looking again, with a generous deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def wait_until(predicate: Callable[[], bool], what: str, seconds: float = 60) -> None:
    """Poll ``predicate`` until it holds; fail naming ``what`` when ``seconds`` pass first."""
    async with asyncio.timeout(seconds):
        while not predicate():
            await asyncio.sleep(0.02)
    assert predicate(), what
