"""The webhook sink: alerts as signed JSON POSTs to a receiver of the desk's own."""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp

from monitor.notify.kind import Destination, SinkContext, SinkKind, SinkSet, references
from monitor.notify.webhook.config import FIELDS, WebhookSettings, read_config
from monitor.notify.webhook.sink import SharedSession, WebhookSink


def build(destinations: Sequence[Destination], context: SinkContext) -> SinkSet:
    """A sink per webhook entry, all sharing one HTTP session."""
    session = SharedSession()
    built = SinkSet(resources=[session])
    for destination in destinations:
        settings = destination.settings(WebhookSettings)
        timeout = aiohttp.ClientTimeout(total=settings.timeout.total_seconds())
        secret = destination.values.get("secret")
        built.sinks.append(
            WebhookSink(destination.config.name, settings.url, secret, session, timeout)
        )
    return built


WEBHOOK = SinkKind("webhook", FIELDS, read_config, build, references("secret"))
