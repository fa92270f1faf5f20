"""The metrics and health endpoint: ``/metrics``, ``/healthz``, ``/readyz``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from monitor.poller import AccountPoller


def make_app(registry: CollectorRegistry, pollers: Sequence[AccountPoller]) -> web.Application:
    """The aiohttp application serving metrics and health."""

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        now = datetime.now(UTC)
        stale = [p.account.id for p in pollers if not p.ready(now)]
        status = 503 if stale else 200
        return web.json_response({"ready": not stale, "stale_accounts": stale}, status=status)

    app = web.Application()
    app.router.add_get("/metrics", make_aiohttp_handler(registry))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def serve(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start serving; returns the runner (for cleanup) and the bound port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound: int = runner.addresses[0][1]
    return runner, bound
