"""``run --record FILE``: every poll outcome appended in the replay format (DESIGN section 5).

Bodies are written as the broker sent them, compacted onto one line, with numbers kept digit for
digit, so a replay reads what the daemon read. Every configured secret is removed from the text
values before they are encoded (never from inside a number, and never after JSON escaping, which
could hide it).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import msgspec

from monitor.brokers.errors import BadResponse, BrokerError
from monitor.brokers.transport import Exchange
from monitor.logs import Redactor


class Recorder:
    """Appends one JSON line per poll outcome and flushes it, so a crash loses at most one."""

    def __init__(self, path: Path, secrets: Iterable[str]) -> None:
        # The positions in it are as private as the state file's: a new file is owner-only.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._file = os.fdopen(fd, "a", encoding="utf-8")
        self._redactor = Redactor(secrets)

    def record(
        self,
        account: str,
        broker: str,
        at: datetime,
        exchange: Exchange | None,
        error: BrokerError | None,
    ) -> None:
        """One line: the response seen (status, body, quotes), or the transport error."""
        line: dict[str, object] = {"at": at.isoformat(), "account": account, "broker": broker}
        if exchange is None and error is None:
            return  # nothing came off a wire (the simulator): nothing to replay
        if exchange is not None and (
            error is None or not 200 <= exchange.status < 300 or isinstance(error, BadResponse)
        ):
            line["status"] = exchange.status
            line["quotes"] = {name: str(price) for name, price in exchange.quotes.items()}
            line["body"] = self._body(exchange.body)
        elif error is not None:
            # No answer, or the poll failed after a good positions answer (a price lookup timed
            # out, the poll ran out of time): the body alone would replay as a good poll.
            line["error"] = self._redactor.scrub(error.reason)
        self._file.write(_ENCODER.encode(line).decode() + "\n")
        self._file.flush()

    def _body(self, body: bytes) -> object:
        """The body as JSON data with secrets scrubbed from its strings, or the scrubbed text."""
        try:
            document = _DECODER.decode(body)
        except msgspec.DecodeError:
            return self._redactor.scrub(body.decode("utf-8", errors="replace"))
        return self._scrubbed(document)

    def _scrubbed(self, value: object) -> object:
        if isinstance(value, str):
            return self._redactor.scrub(value)
        if isinstance(value, list):
            return [self._scrubbed(item) for item in value]
        if isinstance(value, dict):
            return {key: self._scrubbed(item) for key, item in value.items()}
        return value

    def close(self) -> None:
        """Close the file."""
        self._file.close()


# Numbers pass through as Decimal, so a recorded body keeps every digit the broker sent.
_DECODER = msgspec.json.Decoder(float_hook=Decimal)
_ENCODER = msgspec.json.Encoder(decimal_format="number")
