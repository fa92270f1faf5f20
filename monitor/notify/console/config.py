"""The console entry of rules.yaml: its output format and the alerts routed to it."""

from __future__ import annotations

from monitor.config.problems import Problems
from monitor.config.routing import SinkConfig, SinkEntry

_FORMATS = ("text", "json")


def read_config(problems: Problems, sink: SinkEntry) -> list[SinkConfig]:
    """A console entry of rules.yaml: its format and the alerts routed to it."""
    entry, owner = sink.entry, sink.owner
    output = entry.get("format", "text")
    if output not in _FORMATS:
        reason = f"must be text or json; got {output!r}"
        problems.problem(owner, "format", reason, entry.line_of("format"))
    return [sink.routed(problems, output_format=str(output))]
