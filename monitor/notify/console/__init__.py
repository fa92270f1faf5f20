"""The console sink: one line per alert on standard output, text or the alert JSON contract."""

from __future__ import annotations

from collections.abc import Sequence

from monitor.config.routing import ROUTING_FIELDS
from monitor.notify.console.config import read_config
from monitor.notify.console.sink import ConsoleSink
from monitor.notify.kind import Destination, SinkContext, SinkKind, SinkSet


def build(destinations: Sequence[Destination], context: SinkContext) -> SinkSet:
    """A console sink per destination, all writing to standard output."""
    return SinkSet([ConsoleSink(d.config.name, d.config.format) for d in destinations])


CONSOLE = SinkKind("console", (*ROUTING_FIELDS, "format"), read_config, build)
