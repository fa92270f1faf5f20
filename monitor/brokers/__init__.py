"""Broker wire formats and live clients: one module per broker.

Each module has a pure ``parse(body, ...) -> Snapshot`` and a live ``Client`` built from a
transport ``Connection``, plus what the account config must provide:
``CREDENTIALS`` (names of ``${ENV}`` references), ``OPTIONS`` (extra account fields and their
types) and ``BASE_URL`` (the default, or None when every account must name its own); optionally
``CREDENTIAL_CHECKS`` (credential name -> a function raising ValueError on a value the client
cannot use).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from types import ModuleType
from typing import Protocol

from monitor.brokers import alphapoint, kotak_neo, portfolio, samco, torus
from monitor.brokers.options import Option
from monitor.brokers.transport import Connection, Exchange
from monitor.model import Snapshot


class Broker(Protocol):
    """A live source of one account's positions."""

    @property
    def last_exchange(self) -> Exchange | None:
        """What the last fetch read off the wire, for ``run --record`` (None when nothing came
        back, or when the connection is not recording)."""
        ...

    async def fetch(self) -> Snapshot:
        """One poll: a good snapshot, or a typed BrokerError."""
        ...

    async def close(self) -> None:
        """Release what the client holds."""
        ...


class Parser(Protocol):
    """Raw response body -> Snapshot, or a typed BrokerError."""

    def __call__(
        self, body: bytes, *, account: str, taken_at: datetime, quotes: Mapping[str, Decimal]
    ) -> Snapshot: ...


@dataclass(frozen=True, slots=True)
class LiveSpec:
    """How to poll a broker live, and what an account of it must configure."""

    client: Callable[[Connection], Broker]
    credentials: tuple[str, ...]
    options: Mapping[str, Option]
    base_url: str | None
    credential_checks: Mapping[str, Callable[[str], object]]


@dataclass(frozen=True, slots=True)
class BrokerFormat:
    """What the core needs to know about a broker."""

    name: str
    parse: Parser
    timezone: str  # where its trading day starts at local midnight
    live: LiveSpec


def _format(module: ModuleType) -> BrokerFormat:
    checks = getattr(module, "CREDENTIAL_CHECKS", {})
    live = LiveSpec(module.Client, module.CREDENTIALS, module.OPTIONS, module.BASE_URL, checks)
    return BrokerFormat(module.BROKER, module.parse, module.TIMEZONE, live)


FORMATS: Mapping[str, BrokerFormat] = {
    module.BROKER: _format(module) for module in (kotak_neo, portfolio, samco, alphapoint, torus)
}
