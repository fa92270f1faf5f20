"""HTTP for the broker adapters: one shared aiohttp session, timeouts, a body cap, rate limits.

Every transport failure becomes a typed BrokerError here, so adapters only deal with bodies.
Messages name the broker, the host and the reason; never a header, token or full URL.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime

import aiohttp
from yarl import URL

from monitor.brokers.errors import BadResponse, BrokerUnavailable, error_for_status

MAX_BODY_BYTES = 16 * 1024 * 1024  # a 10,000-row Kotak body is about 9 MB


@dataclass(frozen=True, slots=True)
class Exchange:
    """What a poll read off the wire, kept for ``run --record``."""

    status: int
    body: bytes
    quotes: Mapping[str, Decimal]


@dataclass(frozen=True, slots=True)
class Connection:
    """Everything an adapter needs to talk to its broker for one account."""

    account: str
    base_url: str
    secrets: Mapping[str, str]  # credential name -> value, resolved from the environment
    options: Mapping[str, object]
    transport: Transport
    timeouts: aiohttp.ClientTimeout
    clock: Callable[[], datetime]  # now, in the account's zone: the snapshot's taken_at
    recording: bool = False  # whether ``run --record`` reads each poll's exchange

    def url(self, path: str) -> str:
        """``path`` under the configured base URL."""
        return self.base_url.rstrip("/") + path

    def exchange(self, status: int, body: bytes, quotes: Mapping[str, Decimal]) -> Exchange | None:
        """What a poll read, for the recorder; None when nothing records, so a client does not
        hold its last body (some 600 bytes a position) for nobody."""
        return Exchange(status, body, quotes) if self.recording else None

    async def call(
        self,
        broker: str,
        method: str,
        url: str | URL,
        *,
        headers: Mapping[str, str],
        json_body: object = None,
        limiter: RateLimiter | None = None,
    ) -> HttpResponse:
        """A request with this account's timeouts."""
        return await self.transport.request(
            broker, method, url, timeouts=self.timeouts, headers=headers, json_body=json_body,
            limiter=limiter,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A broker's answer: status, the raw body (at most the cap), and the Retry-After header."""

    status: int
    body: bytes
    retry_after: float | None


class RateLimiter:
    """At most ``count`` requests in any ``per`` seconds (a broker's per-user limit).

    A log of the last ``count`` send times: a request waits only when the window is full, so
    a poll's few requests go out back to back while a burst is still held to the limit.
    ``RateLimiter(1, 0.2)`` spaces requests 0.2 s apart.
    """

    def __init__(self, count: int, per: float = 1.0) -> None:
        self._per = per
        self._sent: deque[float] = deque(maxlen=count)
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        """Return when the next request may go out."""
        async with self._lock:
            now = time.monotonic()
            if len(self._sent) == self._sent.maxlen and now - self._sent[0] < self._per:
                await asyncio.sleep(self._sent[0] + self._per - now)
                now = time.monotonic()
            self._sent.append(now)


class Transport:
    """Requests through the daemon's one ClientSession, mapped to typed broker errors."""

    def __init__(self, max_body: int = MAX_BODY_BYTES) -> None:
        self._max_body = max_body
        self._session: aiohttp.ClientSession | None = None

    def open(self) -> None:
        """Create the shared session (inside the running event loop)."""
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(total=30),  # every call passes the account's own
        )

    async def close(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        broker: str,
        method: str,
        url: str | URL,
        *,
        timeouts: aiohttp.ClientTimeout,
        headers: Mapping[str, str],
        json_body: object = None,
        limiter: RateLimiter | None = None,
    ) -> HttpResponse:
        """One request; BrokerUnavailable on network trouble and timeouts, BadResponse on a body
        over the cap."""
        if self._session is None:
            raise BrokerUnavailable(broker, f"{_host(url)}: transport is closed")
        if limiter is not None:
            await limiter.wait()
        try:
            async with self._session.request(
                method, url, headers=headers, json=json_body, timeout=timeouts,
                allow_redirects=False,
            ) as response:  # fmt: skip
                status = response.status
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                chunks, size = [], 0
                async for chunk in response.content.iter_any():
                    size += len(chunk)
                    if size > self._max_body:
                        raise BadResponse(
                            broker,
                            f"{_host(url)}: body larger than {self._max_body} bytes",
                            status=status,
                        )
                    chunks.append(chunk)
        except TimeoutError as err:  # aiohttp 3.14 raises the builtin on a total timeout
            raise BrokerUnavailable(broker, f"{_host(url)}: timed out") from err
        except aiohttp.ClientError as err:
            raise BrokerUnavailable(broker, f"{_host(url)}: {type(err).__name__}") from err
        except ValueError as err:  # aiohttp refuses a header value (a token with a line break)
            raise BadResponse(
                broker, f"{_host(url)}: request not sent: {type(err).__name__}"
            ) from err
        return HttpResponse(status, b"".join(chunks), retry_after)


def _host(url: str | URL) -> str | None:
    """The host an error names (parsed only on the error path: polls never pay for it)."""
    return URL(url).host if isinstance(url, str) else url.host


def require_success(broker: str, response: HttpResponse) -> bytes:
    """The body of a 2xx response; any other status raises its typed error."""
    if 200 <= response.status < 300:
        return response.body
    raise error_for_status(broker, response.status, response.retry_after)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
