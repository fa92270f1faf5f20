"""The client an account is polled through: the simulator, or its broker's live client over the
daemon's shared HTTP transport."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import aiohttp

from monitor.brokers import FORMATS, Broker
from monitor.brokers.simulator import BROKER as SIMULATOR
from monitor.brokers.simulator import WARM_UP as SIMULATOR_WARM_UP
from monitor.brokers.simulator import Simulator
from monitor.brokers.transport import Connection, Transport
from monitor.config import AccountConfig, Config, ConfigError
from monitor.model import Snapshot


def make_broker(
    config: Config,
    account: AccountConfig,
    secrets: Mapping[str, str],
    transport: Transport,
    *,
    recording: bool = False,
) -> Broker:
    """The live source for an account; ``recording`` keeps each poll's exchange for
    ``run --record``."""
    if account.broker == SIMULATOR:
        zone = account.timezone
        return Simulator(
            account.id, seed=account.seed, tick=account.poll_every, timezone=zone,
            started=datetime.now(zone) - SIMULATOR_WARM_UP,
        )  # fmt: skip
    live = FORMATS[account.broker].live
    assert account.base_url is not None  # noqa: S101 - type narrowing: config requires it  # nosec B101
    total = account.request_timeout.total_seconds()
    connect = min(account.connect_timeout.total_seconds(), total)
    zone = account.timezone
    connection = Connection(
        account=account.id,
        base_url=account.base_url,
        secrets=secrets,
        options=account.options,
        transport=transport,
        timeouts=aiohttp.ClientTimeout(total=total, connect=connect),
        clock=lambda: datetime.now(zone),
        recording=recording,
    )
    try:
        return live.client(connection)
    except ValueError as err:  # a credential the client cannot use, such as a bad TOTP secret
        raise ConfigError([f"{config.path}: account '{account.id}': credentials: {err}"]) from err


async def fetch_once(
    config: Config, account: AccountConfig, secrets: Mapping[str, str]
) -> Snapshot:
    """Log in and fetch one snapshot of ``account``: what ``position-monitor snapshot`` shows."""
    transport = Transport()
    broker = make_broker(config, account, secrets, transport)
    transport.open()
    try:
        return await broker.fetch()
    finally:
        await broker.close()
        await transport.close()
