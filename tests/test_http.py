"""The metrics endpoint: rendered off the event loop, in the format the scraper asks for."""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor import http

WAIT = 30.0  # seconds: a generous bound for anything that does happen


class HeldCollector(Collector):
    """A collector that holds the render until the test lets it go, as a huge registry would."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def collect(self) -> Iterator[Metric]:
        self.entered.set()
        self.release.wait(WAIT)  # bounded: a render on the loop must fail the test, not hang it
        yield GaugeMetricFamily("held_render", "A family whose collection was held.", value=1)


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, CollectorRegistry, HeldCollector]]:
    registry = CollectorRegistry()
    held = HeldCollector()
    registry.register(held)
    refused = Counter("refused", "Connections refused.", registry=CollectorRegistry())
    app = http.make_app(registry, lambda: [], reload=_no_reload, lifecycle=lambda: False)
    runner, port = await http.serve(app, "127.0.0.1", 0, refused)
    try:
        yield f"http://127.0.0.1:{port}", registry, held
    finally:
        held.release.set()
        await runner.cleanup()


async def _no_reload() -> list[str]:
    return []


async def test_healthz_answers_while_a_metrics_render_is_held(
    served: tuple[str, CollectorRegistry, HeldCollector],
) -> None:
    """The render runs on a worker thread: while it is held, the loop still serves /healthz;
    once let go, the scrape returns what it collected."""
    base, _, held = served
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as session:
        scrape = asyncio.create_task(session.get(base + "/metrics"))
        assert await asyncio.to_thread(held.entered.wait, WAIT), "the render never started"
        async with session.get(base + "/healthz") as response:
            assert response.status == 200
        assert not scrape.done() and not held.release.is_set(), "premise: the render is held"
        held.release.set()
        async with await scrape as response:
            assert response.status == 200
            assert "held_render 1.0" in await response.text()


async def test_openmetrics_and_gzip_when_asked_and_names_narrow_the_families(
    served: tuple[str, CollectorRegistry, HeldCollector],
) -> None:
    """Prometheus asks for OpenMetrics with gzip; ``name[]`` narrows the scrape."""
    base, registry, held = served
    held.release.set()
    Counter("polls", "Polls.", registry=registry).inc(3)
    headers = {
        "Accept": "application/openmetrics-text; version=1.0.0,text/plain;q=0.5",
        "Accept-Encoding": "gzip",
    }
    async with (
        aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=WAIT), auto_decompress=False
        ) as session,
        session.get(base + "/metrics", headers=headers, params={"name[]": "polls_total"}) as got,
    ):
        assert got.headers["Content-Type"].startswith("application/openmetrics-text")
        assert got.headers["Content-Encoding"] == "gzip"
        text = gzip.decompress(await got.read()).decode()
    assert "polls_total 3.0" in text
    assert "held_render" not in text
    assert text.endswith("# EOF\n")
