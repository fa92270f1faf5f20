"""The contract every sink implements: deliver one alert or say why not."""

from __future__ import annotations

import enum
from typing import Protocol

from monitor.model import Alert


class Reason(enum.StrEnum):
    """Why a delivery failed; a metric label, never free text."""

    CLIENT_ERROR = "client_error"
    SERVER_ERROR = "server_error"
    RATE_LIMITED = "rate_limited"
    AUTH_ERROR = "auth_error"
    TRANSPORT_ERROR = "transport_error"
    SINK_ERROR = "sink_error"  # the sink itself raised something unexpected


class DeliveryFailed(Exception):
    """A sink could not deliver. ``retryable`` says whether trying again can help."""

    def __init__(self, reason: Reason, detail: str, *, retryable: bool) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.retryable = retryable


class Sink(Protocol):
    """Delivers alerts somewhere. Sinks never retry or sleep: the dispatcher does."""

    @property
    def name(self) -> str: ...

    async def send(self, alert: Alert) -> None:
        """Deliver one alert or raise DeliveryFailed."""
        ...

    async def close(self) -> None:
        """Release anything the sink holds."""
        ...
