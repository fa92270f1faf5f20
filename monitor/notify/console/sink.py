"""The console sink: one line per alert on standard output, text or the alert JSON contract.

On a terminal a text line is coloured by what it asks of the reader: critical bold red,
warning yellow, resolved green, info plain; never in JSON, never when standard output is not a
terminal or NO_COLOR is set (README, "Logs").
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from monitor.logs import colours_wanted
from monitor.model import Alert, AlertState, Severity
from monitor.notify.base import DeliveryFailed, Reason, sink_bug

_RESET = "\x1b[0m"
_SEVERITY_COLOUR = {Severity.CRITICAL: "\x1b[1;31m", Severity.WARNING: "\x1b[33m"}
_RESOLVED_COLOUR = "\x1b[32m"


def coloured(alert: Alert, line: str) -> str:
    """``line`` in the colour of the alert's severity (green when resolved; info plain)."""
    colour = (
        _RESOLVED_COLOUR
        if alert.state is AlertState.RESOLVED
        else _SEVERITY_COLOUR.get(alert.severity)
    )
    return line if colour is None else f"{colour}{line}{_RESET}"


class ConsoleSink:
    """Prints alerts; the zero-configuration default."""

    def __init__(
        self,
        name: str,
        output_format: str = "text",
        stream: TextIO | None = None,
        colours: bool | None = None,
    ) -> None:
        self._name = name
        self._format = output_format
        self._stream = stream or sys.stdout
        if colours is None:
            colours = colours_wanted(self._stream)
        self._colours = colours and output_format == "text"

    @property
    def name(self) -> str:
        """The sink's name in rules.yaml, metrics and the outbox."""
        return self._name

    async def send(self, alerts: Sequence[Alert]) -> None:
        """Write each alert as one line and flush, so a pipe reader sees it at once."""
        for done, alert in enumerate(alerts):
            try:
                line = alert.to_jsonl() if self._format == "json" else alert.to_line()
                if self._colours:
                    line = coloured(alert, line)
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
