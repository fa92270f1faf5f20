"""A local webhook receiver for Alertmanager's ``webhook_configs``: it keeps every notification
it is sent, in order, and lets a test wait for the next one."""

from __future__ import annotations

import asyncio
from typing import Any, Self

from aiohttp import web


class Receiver:
    """An aiohttp server on 127.0.0.1 taking Alertmanager's webhook notifications."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        self._arrived: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _hook(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = await request.json()
        self.notifications.append(body)
        self._arrived.put_nowait(body)
        return web.Response(text="ok")

    async def wait_for(self, status: str, alertname: str) -> dict[str, Any]:
        """The first notification, received so far or arriving, with ``status`` for an alert
        named ``alertname`` (callers bound the wait with ``asyncio.timeout``)."""
        while True:
            for body in self.notifications:
                if body["status"] == status and any(
                    a["labels"].get("alertname") == alertname for a in body["alerts"]
                ):
                    return body
            await self._arrived.get()
