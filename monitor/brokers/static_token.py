"""Brokers polled with one long-lived token from the environment (portfolio, torus).

One POST per poll, never retried here (the poller backs off). A refused token cannot be
renewed by logging in again, so the error tells the user to renew it and restart.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from monitor.brokers.errors import AuthExpired
from monitor.brokers.transport import Connection, Exchange, require_success
from monitor.model import Snapshot


class StaticTokenClient:
    """The whole client of a static-token broker; a subclass says where and how to ask."""

    broker: str
    path: str
    request: object  # the JSON body of every poll
    renew: str  # what the user should do when the token is refused

    def __init__(self, connection: Connection) -> None:
        self._conn = connection
        self._headers = self.headers(connection.secrets["token"])
        self.last_exchange: Exchange | None = None

    def headers(self, token: str) -> Mapping[str, str]:
        """The request headers, carrying the token the way the broker expects it."""
        raise NotImplementedError

    def parse(self, body: bytes, taken_at: datetime) -> Snapshot:
        """The broker module's parser."""
        raise NotImplementedError

    async def fetch(self) -> Snapshot:
        """One poll: a single request."""
        self.last_exchange = None
        response = await self._conn.call(
            self.broker, "POST", self._conn.url(self.path), headers=self._headers,
            json_body=self.request,
        )  # fmt: skip
        taken_at = self._conn.clock()
        self.last_exchange = self._conn.exchange(response.status, response.body, {})
        if response.status in (401, 403):
            raise AuthExpired(
                self.broker,
                f"token rejected (HTTP {response.status}): {self.renew}",
                status=response.status,
            )
        body = require_success(self.broker, response)
        try:
            return self.parse(body, taken_at)
        except AuthExpired as err:  # an error envelope saying the token is refused
            raise AuthExpired(self.broker, f"token rejected ({err.reason}): {self.renew}") from err

    async def close(self) -> None:
        """The shared HTTP session is closed by the daemon."""
