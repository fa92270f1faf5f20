"""Broker wire formats: one module per broker, each a pure ``parse(body, ...) -> Snapshot``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from monitor.brokers import alphapoint, kotak_neo, portfolio, samco, torus
from monitor.model import Snapshot


class Broker(Protocol):
    """A live source of one account's positions."""

    async def fetch(self) -> Snapshot:
        """One poll: a good snapshot, or a typed BrokerError."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class Parser(Protocol):
    """Raw response body -> Snapshot, or a typed BrokerError."""

    def __call__(
        self, body: bytes, *, account: str, taken_at: datetime, quotes: Mapping[str, Decimal]
    ) -> Snapshot: ...


@dataclass(frozen=True, slots=True)
class BrokerFormat:
    """What the core needs to know about a broker without talking to it."""

    name: str
    parse: Parser
    timezone: str  # where its trading day starts at local midnight


FORMATS: Mapping[str, BrokerFormat] = {
    module.BROKER: BrokerFormat(module.BROKER, module.parse, module.TIMEZONE)
    for module in (kotak_neo, portfolio, samco, alphapoint, torus)
}
