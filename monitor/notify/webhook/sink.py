"""The webhook sink: each poll's alerts as one signed JSON POST (README "Webhook").

The body is ``{"version": "1", "alerts": [...]}``, each alert its JSON contract plus an ``id``.
The id is a digest of the alert's own content, so a redelivery after a crash or an outage
carries the same id, and two replicas (each watching its own accounts) never give distinct
alerts one id. With a secret, ``X-Position-Monitor-Signature`` is the HMAC-SHA256 of
``"<timestamp>.<body>"`` over the exact bytes sent, so a receiver can refuse forged and
replayed requests. 2xx is delivered; 429 and 5xx are retried after the Retry-After asked for;
any other answer (4xx, a redirect) is refused for good; transport errors and timeouts are
retried. Retries, backoff and parking are the dispatcher's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Sequence

import aiohttp

from monitor import __version__
from monitor.brokers.transport import parse_retry_after
from monitor.model import Alert
from monitor.notify.base import DeliveryFailed, Reason, url_host
from monitor.notify.retry import MAX_RETRY_AFTER

TIMESTAMP_HEADER = "X-Position-Monitor-Timestamp"
SIGNATURE_HEADER = "X-Position-Monitor-Signature"
PAYLOAD_VERSION = "1"


def alert_id(alert: Alert) -> str:
    """The alert's stable id: a SHA-256 digest (128 bits, hex) of its canonical JSON."""
    canonical = json.dumps(
        alert.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def payload(alerts: Sequence[Alert]) -> bytes:
    """The request body for a group of alerts."""
    body = {
        "version": PAYLOAD_VERSION,
        "alerts": [{**alert.to_json(), "id": alert_id(alert)} for alert in alerts],
    }
    return json.dumps(body, ensure_ascii=False, allow_nan=False).encode()


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC of ``timestamp.body``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


class SharedSession:
    """One aiohttp session for every webhook destination, opened on first use (inside the
    event loop) and closed once at shutdown."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def get(self) -> aiohttp.ClientSession:
        """The open session."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": f"position-monitor/{__version__}"}
            )
        return self._session

    async def close(self) -> None:
        """Close the session, if one was opened."""
        if self._session is not None:
            await self._session.close()
            self._session = None


class WebhookSink:
    """POSTs each group of alerts to one receiver."""

    def __init__(
        self,
        name: str,
        url: str,
        secret: str | None,
        session: SharedSession,
        timeout: aiohttp.ClientTimeout,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._name = name
        self._url = url
        self._secret = secret or None
        self._session = session
        self._timeout = timeout
        self._clock = clock
        self._host = url_host(url)  # failure details name the receiver by host only

    @property
    def name(self) -> str:
        """The sink's name in rules.yaml, metrics and the outbox."""
        return self._name

    async def send(self, alerts: Sequence[Alert]) -> None:
        """POST the group; return on 2xx, else raise DeliveryFailed saying whether to retry."""
        body = payload(alerts)
        headers = {"Content-Type": "application/json"}
        if self._secret is not None:
            timestamp = str(int(self._clock()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = signature(self._secret, timestamp, body)
        try:
            async with self._session.get().post(
                self._url,
                data=body,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,  # a redirect would carry the signed body elsewhere
            ) as response:
                status = response.status
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
        except TimeoutError as err:  # aiohttp's total timeout is the builtin TimeoutError
            raise DeliveryFailed(
                Reason.TRANSPORT_ERROR, f"{self._host}: timed out", retryable=True
            ) from err
        except aiohttp.ClientError as err:
            detail = f"{self._host}: {type(err).__name__}"
            raise DeliveryFailed(Reason.TRANSPORT_ERROR, detail, retryable=True) from err
        if 200 <= status < 300:
            return
        raise _refused(self._host, status, retry_after)

    async def close(self) -> None:
        """The session is shared: the daemon closes it after every sink."""


def _refused(host: str, status: int, retry_after: float | None) -> DeliveryFailed:
    """What a non-2xx answer means for the alerts."""
    detail = f"{host}: HTTP {status}"
    wait = None if retry_after is None else min(retry_after, MAX_RETRY_AFTER)
    if status == 429:
        return DeliveryFailed(Reason.RATE_LIMITED, detail, retryable=True, retry_after=wait)
    if status >= 500:
        return DeliveryFailed(Reason.SERVER_ERROR, detail, retryable=True, retry_after=wait)
    reason = Reason.AUTH_ERROR if status in (401, 403) else Reason.CLIENT_ERROR
    return DeliveryFailed(reason, detail, retryable=False)
