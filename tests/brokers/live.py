"""Builds a live client's Connection against a fake server, for the adapter tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime

import aiohttp

from monitor.brokers.transport import Connection, Transport
from tests.snapshots import T0


@asynccontextmanager
async def connection(
    base_url: str,
    secrets: Mapping[str, str],
    options: Mapping[str, object] | None = None,
    *,
    account: str = "acct",
    total_timeout: float = 30.0,  # ample on a busy machine; timeout tests pass their own
    max_body: int = 16 * 1024 * 1024,
    clock: datetime = T0,
    recording: bool = True,
) -> AsyncIterator[Connection]:
    """A Connection over a fresh ClientSession, closed on exit; by default it keeps each
    poll's exchange, as under ``run --record``, for the tests that read it."""
    transport = Transport(max_body=max_body)
    transport.open()
    try:
        yield Connection(
            account=account,
            base_url=base_url,
            secrets=dict(secrets),
            options=dict(options or {}),
            transport=transport,
            timeouts=aiohttp.ClientTimeout(total=total_timeout, connect=min(1.0, total_timeout)),
            clock=lambda: clock,
            recording=recording,
        )
    finally:
        await transport.close()
