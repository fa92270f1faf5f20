"""The notify section of rules.yaml: each entry read by its sink kind's own reader.

A sink kind is one entry of the registry (``monitor/notify/registry.py``); a kind not there is
an error, never a console sink. The checks across entries (names unique over sinks and chats)
stay here.
"""

from __future__ import annotations

from monitor.config.problems import NAME, NAME_RULE, Problems
from monitor.config.routing import SinkConfig, SinkEntry
from monitor.config.yaml_lines import LineMap


def read_sinks(problems: Problems, document: LineMap) -> tuple[SinkConfig, ...]:
    """Every destination of the notify section; without one, a console sink."""
    if "notify" not in document:
        return (SinkConfig("console", "console"),)
    # Imported here: every kind's reader imports this package, which must load without them.
    from monitor.notify.registry import SINK_KINDS as kinds  # noqa: PLC0415

    sinks: list[SinkConfig] = []
    taken: dict[str, int] = {}
    for index, entry in enumerate(problems.entries(document, "notify", required=True)):
        kind = entry.get("kind")
        name = entry.get("name", kind)
        owner = f"notify '{name}'" if isinstance(name, str) else f"notify[{index}]"
        sink_kind = kinds.get(kind) if isinstance(kind, str) else None
        if sink_kind is None:
            got = "missing" if kind is None else f"unknown sink kind {kind!r}"
            reason = f"{got}; expected one of {', '.join(kinds)}"
            problems.problem(owner, "kind", reason, entry.line_of("kind"))
            continue
        problems.unknown_fields(entry, owner, sink_kind.fields)
        if _unique_name(problems, name, owner, entry, taken):
            sinks += sink_kind.read(
                problems, SinkEntry(entry, str(name), sink_kind.name, owner, taken)
            )
    return tuple(sinks)


def _unique_name(
    problems: Problems, name: object, owner: str, entry: LineMap, taken: dict[str, int]
) -> bool:
    """Check a sink's name; sinks and chats share one namespace (the outbox's)."""
    if not isinstance(name, str) or not NAME.match(name):
        problems.problem(owner, "name", NAME_RULE, entry.line_of("name"))
        return False
    if name in taken:
        reason = f"duplicate of the sink on line {taken[name]}"
        problems.problem(owner, "name", reason, entry.line_of("name"))
        return False
    taken[name] = entry.line
    return True
