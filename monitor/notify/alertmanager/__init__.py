"""The Alertmanager sink: alerts posted to Alertmanager's API v2, firing conditions re-posted
before they expire there (README "Alertmanager")."""

from __future__ import annotations

from collections.abc import Sequence

from monitor.notify.alertmanager.config import FIELDS, AlertmanagerSettings, read_config
from monitor.notify.alertmanager.sink import AlertmanagerSink, authorization
from monitor.notify.kind import Destination, SinkContext, SinkKind, SinkSet, references


def build(destinations: Sequence[Destination], context: SinkContext) -> SinkSet:
    """A sink per entry; each also runs the loop that re-posts its firing conditions."""
    built = SinkSet()
    for destination in destinations:
        settings = destination.settings(AlertmanagerSettings)
        sink = AlertmanagerSink(
            destination.config,
            settings,
            authorization=authorization(settings, destination.values),
            redact=context.redact,
            firing=context.view.firing_conditions,
            clock=context.clock,
        )
        built.sinks.append(sink)
        built.services.append(sink)
    return built


ALERTMANAGER = SinkKind(
    "alertmanager",
    FIELDS,
    read_config,
    build,
    references("username", "password", "bearer_token"),
)
