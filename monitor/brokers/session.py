"""Brokers polled within a login session (alphapoint, kotak_neo, samco).

A poll logs in first when no session is held, and logs in once more when the broker says the
session expired (AuthExpired): a session that lapsed between polls costs no failed poll.
"""

from __future__ import annotations

from monitor.brokers.errors import AuthExpired
from monitor.brokers.transport import Connection, Exchange, RateLimiter
from monitor.model import Snapshot


class SessionClient:
    """The fetch of a session broker; a subclass says how to log in and how to poll."""

    def __init__(self, connection: Connection, limiter: RateLimiter) -> None:
        self._conn = connection
        self._limiter = limiter  # every request of the account, logins included
        self.last_exchange: Exchange | None = None

    def _logged_in(self) -> bool:
        """Whether a session is held that the broker should still accept."""
        raise NotImplementedError

    async def _login(self) -> None:
        """Open a new session, or raise a typed BrokerError."""
        raise NotImplementedError

    async def _poll(self) -> Snapshot:
        """One poll within the session held."""
        raise NotImplementedError

    async def fetch(self) -> Snapshot:
        """One poll; an expired session is renewed once within it."""
        self.last_exchange = None
        if not self._logged_in():
            await self._login()
            return await self._poll()
        try:
            return await self._poll()
        except AuthExpired:
            await self._login()
            return await self._poll()

    async def close(self) -> None:
        """The shared HTTP session is closed by the daemon."""
