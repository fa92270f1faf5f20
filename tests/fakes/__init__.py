"""Local fake broker servers that behave like the real APIs, one module per broker.

Tests, benchmarks and manual demos start them the same way: ``async with serve(app) as base:``
gives the base URL of the app listening on 127.0.0.1 on a free port.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from aiohttp import web

T = TypeVar("T")


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Run ``app`` on 127.0.0.1 on a free port; yield its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


class ThreadedServer:
    """A fake served from its own thread and event loop, for tests that block on a subprocess.

    ``call(fn, *args)`` runs ``fn`` on the server's loop (fakes are not thread-safe).
    """

    def __init__(self, make: Callable[[], web.Application]) -> None:
        self._make = make
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.base_url = ""

    def __enter__(self) -> ThreadedServer:
        self._thread.start()
        started = concurrent.futures.Future[str]()

        async def main() -> None:
            self._stop = asyncio.Event()
            async with serve(self._make()) as base:
                started.set_result(base)
                await self._stop.wait()

        self._done = asyncio.run_coroutine_threadsafe(main(), self._loop)
        self.base_url = started.result(timeout=60)
        return self

    def call(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` on the server's loop and return its result."""

        async def run() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=60)

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._done.result(timeout=60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=60)
        self._loop.close()
