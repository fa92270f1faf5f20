"""The metrics and health endpoint: ``/metrics``, ``/healthz``, ``/readyz``, and
``POST /-/reload`` when the lifecycle endpoint is enabled (as Prometheus's
``--web.enable-lifecycle``; README, "Reloading the configuration").

``/metrics`` is rendered on a worker thread, one scrape at a time: the text of thousands of
accounts takes a good part of a second to build, and polls must not wait for it.

Bounded against slow or idle clients, since polling shares the process's file limit with it:
a client has a few seconds to send a request (and to send the next one on a kept-alive
connection), request lines and headers are small, and while a quarter of the file limit is
taken by open connections a new one is closed at once and counted.
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.exposition import choose_encoder

from monitor.health import HealthTracker

IDLE_SECONDS = 5.0  # to send a request on a new or kept-alive connection
MAX_CONNECTIONS = 1024
BACKLOG = 32  # connections accepted per turn of the loop, so the cap is passed by few
LINE_BYTES = 4096  # request line and each header; our requests are a path and a few headers
MAX_HEADERS = 32
SHUTDOWN_SECONDS = 1.0  # for handlers still running when the daemon stops


def make_app(
    registry: CollectorRegistry,
    health: Callable[[], Sequence[HealthTracker]],
    reload: Callable[[], Awaitable[Sequence[str]]],
    lifecycle: Callable[[], bool],
) -> web.Application:
    """The aiohttp application serving metrics and health (``health``: the accounts' trackers
    now); ``reload`` reloads the configuration and returns its problems (none: applied), and
    ``POST /-/reload`` runs it while ``lifecycle()`` says the endpoint is enabled."""

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        now, trackers = datetime.now(UTC), health()
        stale = [h.account.id for h in trackers if not h.ready(now)]
        status = 503 if stale else 200
        # A shard the hashing gave no account is ready, and "accounts": 0 says why.
        body = {"ready": not stale, "accounts": len(trackers), "stale_accounts": stale}
        return web.json_response(body, status=status)

    async def reload_config(request: web.Request) -> web.Response:
        if not lifecycle():
            # Prometheus's answer: the endpoint exists, but this daemon does not allow it.
            return web.Response(status=403, text="Lifecycle API is not enabled.\n")
        problems = await reload()
        if problems:
            return web.Response(status=500, text="".join(f"{p}\n" for p in problems))
        return web.Response(text="configuration reloaded\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics_handler(registry))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_post("/-/reload", reload_config)
    return app


def metrics_handler(registry: CollectorRegistry) -> Handler:
    """``GET /metrics`` in the format the scraper accepts (``name[]`` narrows it to those
    families), rendered off the loop; compressed when the scraper accepts it."""
    rendering = asyncio.Lock()  # two scrapes at once would only share the interpreter

    async def metrics(request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(",".join(request.headers.getall(hdrs.ACCEPT, [])))
        names = request.query.getall("name[]", [])
        source = registry.restricted_registry(names) if names else registry
        async with rendering:
            body = await asyncio.to_thread(encoder, source)
        response = web.Response(body=body, headers={hdrs.CONTENT_TYPE: content_type})
        response.enable_compression()
        return response

    return metrics


def connection_cap() -> int:
    """A quarter of the open-file limit, at most MAX_CONNECTIONS: the rest is for polls, the
    state file and the bot."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(4, min(MAX_CONNECTIONS, soft // 4))


async def serve(
    app: web.Application, host: str, port: int, refused: Counter
) -> tuple[web.AppRunner, int]:
    """Start serving; returns the runner (for cleanup) and the bound port. Connections closed
    at once for being over the cap are counted in ``refused``."""
    runner = web.AppRunner(
        app,
        access_log=None,
        keepalive_timeout=IDLE_SECONDS,
        max_line_size=LINE_BYTES,
        max_field_size=LINE_BYTES,
        max_headers=MAX_HEADERS,
        handler_cancellation=True,  # a client gone mid-request stops its handler
        # Shutdown waits this long for handlers still running (a scrape, a reload), not
        # aiohttp's minute: the daemon exits within 10 s of SIGTERM.
        shutdown_timeout=SHUTDOWN_SECONDS,
    )
    await runner.setup()
    site = _CappedSite(runner, host, port, connection_cap(), refused)
    await site.start()
    bound: int = runner.addresses[0][1]
    return runner, bound


class _CappedSite(web.BaseSite):
    """A TCP site that closes a new connection at once while ``cap`` are open."""

    __slots__ = ("_cap", "_host", "_port", "_refused")

    def __init__(
        self, runner: web.AppRunner, host: str, port: int, cap: int, refused: Counter
    ) -> None:
        super().__init__(runner, backlog=BACKLOG)
        self._host = host
        self._port = port
        self._cap = cap
        self._refused = refused

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._connection, self._host, self._port, backlog=self._backlog, reuse_address=True
        )

    def _connection(self) -> asyncio.BaseProtocol:
        server = self._runner.server  # None once the runner is cleaned up
        if server is None or len(server.connections) >= self._cap:
            self._refused.inc()
            return _Refused()
        return server()


class _Refused(asyncio.Protocol):
    """Closes its connection as soon as it is made."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()
