"""The console sink: one line per alert on standard output, text or the alert JSON contract;
and the reader of its rules.yaml entry."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from monitor.config.problems import Problems
from monitor.config.routing import SinkConfig, SinkEntry, SinkKind
from monitor.model import Alert, Severity
from monitor.notify.base import DeliveryFailed, Reason, sink_bug
from monitor.printable import printable

_FIELDS = ("kind", "name", "min_severity", "format", "accounts", "rules")
_FORMATS = ("text", "json")


class ConsoleSink:
    """Prints alerts; the zero-configuration default."""

    def __init__(
        self, name: str, output_format: str = "text", stream: TextIO | None = None
    ) -> None:
        self._name = name
        self._format = output_format
        self._stream = stream or sys.stdout

    @property
    def name(self) -> str:
        """The sink's name in rules.yaml, metrics and the outbox."""
        return self._name

    async def say(self, text: str) -> None:
        """A message about the daemon itself; in json format standard output carries alerts
        only, so it is left out there."""
        if self._format == "text":
            self._stream.write(printable(text) + "\n")
            self._stream.flush()

    async def send(self, alerts: Sequence[Alert]) -> None:
        """Write each alert as one line and flush, so a pipe reader sees it at once."""
        for done, alert in enumerate(alerts):
            try:
                line = alert.to_jsonl() if self._format == "json" else alert.to_line()
                self._stream.write(line + "\n")
                self._stream.flush()
            except OSError as err:
                raise DeliveryFailed(
                    Reason.TRANSPORT_ERROR, str(err), retryable=True, delivered=done
                ) from err
            except Exception as err:  # e.g. a character the stream cannot encode
                raise sink_bug(err, done) from err

    async def close(self) -> None:
        """Standard output is not ours to close."""


def read_config(problems: Problems, sink: SinkEntry) -> list[SinkConfig]:
    """A console entry of rules.yaml: its format and the alerts routed to it."""
    entry, owner = sink.entry, sink.owner
    output = entry.get("format", "text")
    if output not in _FORMATS:
        reason = f"must be text or json; got {output!r}"
        problems.problem(owner, "format", reason, entry.line_of("format"))
    return [
        SinkConfig(
            sink.name,
            "console",
            problems.severity(entry, owner, Severity.INFO, "min_severity"),
            output,
            problems.globs(entry, "accounts", owner),
            problems.globs(entry, "rules", owner),
        )
    ]


CONSOLE = SinkKind(_FIELDS, read_config)
