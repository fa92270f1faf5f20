"""Every sink kind rules.yaml may name: the one place a ``kind:`` string becomes a sink.

Adding a kind is its package (``monitor/notify/<kind>/``, exporting its ``SinkKind``) and one
line here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from monitor.notify.alertmanager import ALERTMANAGER
from monitor.notify.console import CONSOLE
from monitor.notify.kind import Destination, Resource, SinkContext, SinkKind, SinkSet
from monitor.notify.telegram import TELEGRAM
from monitor.notify.webhook import WEBHOOK

if TYPE_CHECKING:  # the config package reads the kinds listed here
    from monitor.config import Notify

SINK_KINDS: Mapping[str, SinkKind] = {
    kind.name: kind
    for kind in (
        CONSOLE,
        TELEGRAM,
        WEBHOOK,
        ALERTMANAGER,
    )
}


def make_sinks(notify: Notify, context: SinkContext) -> SinkSet:
    """Every destination's sink, built by its kind, in file order; with the loops the kinds
    run beside them and the resources their destinations share."""
    by_kind: dict[str, list[Destination]] = {}
    for destination in notify.destinations:
        by_kind.setdefault(destination.config.kind, []).append(destination)
    built = SinkSet()
    for kind, destinations in by_kind.items():
        part = SINK_KINDS[kind].build(destinations, context)
        built.sinks += part.sinks
        built.services += part.services
        built.resources += part.resources
    order = {sink.name: index for index, sink in enumerate(notify.sinks)}
    built.sinks.sort(key=lambda sink: order[sink.name])
    return built


async def close_resources(resources: Sequence[Resource]) -> None:
    """Close what a kind's sinks shared; closing one must not stop the rest."""
    for resource in resources:
        with contextlib.suppress(Exception):
            await resource.close()
