"""Alertmanager delivery: each group of alerts one ``POST /api/v2/alerts``, and a loop that
re-posts the conditions firing now before Alertmanager would let them expire.

``send`` only says what went wrong; retries, backoff and parking are the dispatcher's. 2xx is
delivered; 429 and 5xx are retried after the Retry-After asked for, timeouts and connection
errors with backoff; 401 and 403 are retried too (alerts wait for fixed credentials rather than
be dropped); any other 4xx (an alert Alertmanager refuses) is parked with its reason.

The re-post loop is best effort and writes no outbox rows: a failed round is logged once and
counted, and the next round (well inside the horizon) tries again.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

import aiohttp
import structlog

from monitor.brokers.transport import parse_retry_after
from monitor.config.routing import SinkConfig
from monitor.model import Alert, AlertState, PositionKey
from monitor.notify.alertmanager import payload
from monitor.notify.alertmanager.config import AlertmanagerSettings
from monitor.notify.base import DeliveryFailed, Reason, sink_bug
from monitor.rules.conditions import FiringCondition
from monitor.rules.registry import CONDITION_KINDS

log = structlog.get_logger(__name__)

API_PATH = "/api/v2/alerts"
_DETAIL_CHARS = 200  # of an error body, enough for Alertmanager's reason

Subject = tuple[str, str, PositionKey | None]  # rule, account, position: one condition


def authorization(settings: AlertmanagerSettings, values: Mapping[str, str]) -> str | None:
    """The Authorization header from the resolved credentials, None without any."""
    if settings.bearer_token is not None:
        return f"Bearer {values['bearer_token']}"
    if settings.username is not None:
        pair = f"{values['username']}:{values['password']}".encode()
        return f"Basic {base64.b64encode(pair).decode()}"
    return None


class AlertmanagerSink:
    """Posts alerts to one Alertmanager and keeps its firing conditions active there."""

    def __init__(
        self,
        config: SinkConfig,
        settings: AlertmanagerSettings,
        *,
        authorization: str | None,
        redact: Callable[[str], str],
        firing: Callable[[], Sequence[FiringCondition]],
        clock: Callable[[], datetime],
        resend_failed: Callable[[], None],
    ) -> None:
        self._config = config
        self.settings = settings
        self._headers = {"Authorization": authorization} if authorization else {}
        self._redact = redact
        self._firing = firing
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        # The last post of each firing condition, so a re-post repeats its labels and
        # annotations exactly; a resolution forgets it.
        self._posted: dict[Subject, payload.Postable] = {}
        # A re-post and a delivery never interleave: a resolution posted while a round that
        # still saw the condition firing was in flight would be undone by that round.
        self._posting = asyncio.Lock()
        self._resend_failed = resend_failed  # counts one failed round
        self._resend_failing = False

    @property
    def name(self) -> str:
        """The sink's name in rules.yaml, metrics and the outbox."""
        return self._config.name

    async def send(self, alerts: Sequence[Alert]) -> None:
        """Post the group as one list: Alertmanager takes all of it or says why not."""
        settings = self.settings
        static = settings.static_labels
        try:
            now = self._clock()
            posts = [
                payload.postable(
                    alert,
                    static,
                    now=now,
                    horizon=settings.horizon,
                    event_expiry=settings.event_expiry,
                )
                for alert in alerts
            ]
        except Exception as err:
            raise sink_bug(err, 0) from err
        async with self._posting:
            await self._post(posts)
            for alert, posted in zip(alerts, posts, strict=True):
                subject = (alert.rule, alert.account, alert.key)
                if alert.state is AlertState.RESOLVED:
                    self._posted.pop(subject, None)
                elif alert.kind in CONDITION_KINDS:
                    self._posted[subject] = posted

    async def resend(self) -> None:
        """One round: re-post every condition routed here that fires now, active for another
        horizon. Failures are logged (on the first of a run) and counted, never raised."""
        async with self._posting:
            now = self._clock()
            firing = [
                c for c in self._firing() if self._config.routes(c.severity, c.account, c.rule)
            ]
            subjects = {(c.rule, c.account, c.key) for c in firing}
            for gone in self._posted.keys() - subjects:  # resolved without a resolved alert
                del self._posted[gone]
            if not firing:
                return
            horizon, static = self.settings.horizon, self.settings.static_labels
            posts = [
                payload.still_firing(posted, now=now, horizon=horizon)
                if (posted := self._posted.get((c.rule, c.account, c.key))) is not None
                else payload.condition_postable(c, static, now=now, horizon=horizon)
                for c in firing
            ]
            try:
                await self._post(posts)
            except DeliveryFailed as failure:
                self._resend_failed()
                if not self._resend_failing:
                    log.warning("alertmanager_resend_failed", sink=self.name, error=str(failure))
                self._resend_failing = True
                return
        if self._resend_failing:
            log.info("alertmanager_resend_recovered", sink=self.name)
        self._resend_failing = False

    async def run(self) -> None:
        """Re-post the firing conditions every ``resend_interval`` until cancelled."""
        interval = self.settings.resend_interval.total_seconds()
        while True:
            await asyncio.sleep(interval)
            await self.resend()

    async def _post(self, posts: list[payload.Postable]) -> None:
        """POST the list; DeliveryFailed says why it was not taken."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout.total_seconds())
            )
        url = f"{self.settings.url}{API_PATH}"
        try:
            async with self._session.post(url, json=posts, headers=self._headers) as response:
                if 200 <= response.status < 300:
                    return
                text = (await response.text(errors="replace"))[:_DETAIL_CHARS]
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as err:
            detail = self._redact(f"{type(err).__name__}: {err}")
            raise DeliveryFailed(Reason.TRANSPORT_ERROR, detail, retryable=True) from err
        detail = self._redact(f"HTTP {status}: {text.strip()}")
        if status == 429:
            raise DeliveryFailed(
                Reason.RATE_LIMITED, detail, retryable=True, retry_after=retry_after
            )
        if status >= 500:
            raise DeliveryFailed(
                Reason.SERVER_ERROR, detail, retryable=True, retry_after=retry_after
            )
        if status in (401, 403):
            raise DeliveryFailed(Reason.AUTH_ERROR, detail, retryable=True)
        raise DeliveryFailed(Reason.CLIENT_ERROR, detail, retryable=False)

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
