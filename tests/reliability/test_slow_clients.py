"""Slow and idle clients on the metrics port, under a small open-file limit.

Expected: they cannot take the files polling needs. The daemon runs with a 256-file limit and
the test opens 300 connections to its port that never finish a request (half send a partial
request line, slowloris style). Connections beyond a quarter of the limit are closed at once
and counted (``position_monitor_http_refused_connections_total``); the held ones are closed
once they have been idle for a few seconds. /healthz answers, polls keep succeeding, and the
log gains no flood of repeated errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import select
import socket
import time
from collections.abc import Iterator

import aiohttp

from tests.fakes import portfolio, serve
from tests.reliability.harness import (
    PORTFOLIO_TOKEN,
    SECRETS,
    Daemon,
    Harness,
    portfolio_account,
    sample,
    until,
)

FILE_LIMIT = 256
CLIENTS = 300
POLLS = "position_monitor_polls_total"


@contextlib.contextmanager
def idle_clients(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections to ``port`` that never send a whole request."""
    clients: list[socket.socket] = []
    try:
        for n in range(count):
            client = socket.socket()
            client.setblocking(False)
            assert client.connect_ex(("127.0.0.1", port)) in (0, errno.EINPROGRESS)
            clients.append(client)
            if n % 2:
                with contextlib.suppress(OSError):  # not connected yet: it stays silent
                    client.send(b"GET /metrics HTTP/1.1\r\nHost: x")
        yield clients
    finally:
        for client in clients:
            client.close()


def connected(clients: list[socket.socket]) -> bool:
    """Whether every client's connection was made (taken, or closed by the daemon since)."""
    poller = select.poll()
    for client in clients:
        poller.register(client, select.POLLOUT)
    return len(poller.poll(0)) == len(clients)


async def get(port: int, path: str, seconds: float = 60.0) -> str:
    """GET ``path`` again and again until it answers 200; its body."""
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"http://127.0.0.1:{port}{path}") as response:
                    if response.status == 200:
                        return await response.text()
            assert time.monotonic() < deadline, f"{path} did not answer in {seconds:g}s"
            await asyncio.sleep(0.2)


async def test_idle_connections_beyond_the_file_limit(harness: Harness) -> None:
    """300 idle connections against a 256-file limit: /healthz answers, polls go on, the
    excess is refused and counted, and the log stays a few lines long."""
    fake = portfolio.PortfolioState(token=PORTFOLIO_TOKEN)
    async with serve(portfolio.make_app(fake)) as base:
        config = harness.rules([portfolio_account(base)])
        daemon = Daemon(config, harness.tmp / "state.db", env=SECRETS)
        daemon.command = ["prlimit", f"--nofile={FILE_LIMIT}:{FILE_LIMIT}", *daemon.command]
        harness.daemons.append(daemon)
        daemon.start()
        port = await daemon.started()
        await daemon.wait_event("baseline_taken")
        lines_before = len(daemon.log_lines)
        with idle_clients(port, CLIENTS) as clients:
            await until(lambda: connected(clients), f"{CLIENTS} connections made", 60.0, daemon)
            metrics = await get(port, "/metrics")
            ok_at_flood = sample(metrics, POLLS, {"account": "p1", "outcome": "ok"})
            await get(port, "/healthz")
            while True:  # three more good polls, read as soon as a scrape gets through
                metrics = await get(port, "/metrics")
                if sample(metrics, POLLS, {"account": "p1", "outcome": "ok"}) >= ok_at_flood + 3:
                    break
                await asyncio.sleep(0.2)
        assert await daemon.sigterm() == 0

    refused = sample(metrics, "position_monitor_http_refused_connections_total", {})
    assert refused >= 1, "the premise: the connection cap was reached"
    failed = [
        s for s in ("error", "unavailable", "bad_response")
        if sample(metrics, POLLS, {"account": "p1", "outcome": s})
    ]  # fmt: skip
    assert failed == []
    new_lines = daemon.log_lines[lines_before:]
    assert len(new_lines) < 10, "\n".join(new_lines[:20])
    assert not any("Too many open files" in line for line in daemon.log_lines)
