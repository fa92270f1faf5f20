"""The contract every sink implements: deliver one alert or say why not."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Protocol
from urllib.parse import urlsplit

from monitor.model import Alert


class Reason(enum.StrEnum):
    """Why a delivery failed; a metric label, never free text."""

    CLIENT_ERROR = "client_error"
    SERVER_ERROR = "server_error"
    RATE_LIMITED = "rate_limited"
    AUTH_ERROR = "auth_error"
    TRANSPORT_ERROR = "transport_error"
    SINK_ERROR = "sink_error"  # the sink itself raised something unexpected (a bug)


class DeliveryFailed(Exception):
    """A sink could not deliver. ``retryable`` says whether trying again can help.

    ``delivered`` counts the alerts at the head of the group that did go out before the
    failure, so they are not sent again; ``retry_after`` is the wait the destination asked for.
    """

    def __init__(
        self,
        reason: Reason,
        detail: str,
        *,
        retryable: bool,
        delivered: int = 0,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.retryable = retryable
        self.delivered = delivered
        self.retry_after = retry_after


def url_host(url: str) -> str:
    """The ``host[:port]`` of a destination's URL, for failure details: never its user and
    password (``https://user:pass@host/``) nor its path, which may carry a token."""
    return urlsplit(url).netloc.rpartition("@")[2]


def sink_bug(err: Exception, delivered: int) -> DeliveryFailed:
    """A sink's own bug, met while handling alert number ``delivered`` of its group."""
    return DeliveryFailed(Reason.SINK_ERROR, repr(err), retryable=True, delivered=delivered)


class Sink(Protocol):
    """Delivers alerts somewhere. Sinks never retry or sleep: the dispatcher does."""

    @property
    def name(self) -> str: ...

    async def send(self, alerts: Sequence[Alert]) -> None:
        """Deliver a group of alerts from one poll of one account, in order.

        Raise DeliveryFailed (with ``delivered`` set when some went out) or return when all did.
        An unexpected error while handling an alert is a bug in the sink: raise it as
        ``sink_bug(err, delivered)``, so the dispatcher charges it to that alert alone. Anything
        else raised is taken to mean nothing of the group went out.
        """
        ...

    async def close(self) -> None:
        """Release anything the sink holds."""
        ...
