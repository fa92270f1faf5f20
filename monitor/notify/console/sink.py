"""The console sink: one line per alert on standard output, text or the alert JSON contract."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from monitor.model import Alert
from monitor.notify.base import DeliveryFailed, Reason, sink_bug


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
