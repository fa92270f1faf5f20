"""``run --record FILE``: every poll outcome appended in the replay format (README "Replay").

Bodies are written as the broker sent them, compacted onto one line, with numbers kept digit for
digit, so a replay reads what the daemon read. Every configured secret is removed from the text
values before they are encoded (never from inside a number, and never after JSON escaping, which
could hide it), and so is the value of every field named like a credential (a session token the
broker issued is in no configuration).

Recording is best effort: a full disk or a body it cannot encode costs that line, never the poll.
The file is capped: when the next line would pass the cap, FILE becomes FILE.1 (replacing the
one before) and a new FILE is started.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import msgspec
import structlog

from monitor.brokers.errors import BadResponse, BrokerError
from monitor.brokers.transport import Exchange
from monitor.logs import Redactor, is_secret_name, secret_value

log = structlog.get_logger(__name__)

DEFAULT_MAX_BYTES = 100 * 1024 * 1024


class Recorder:
    """Appends one JSON line per poll outcome, each written whole or not at all."""

    def __init__(
        self, path: Path, secrets: Iterable[str], max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        self._path = path
        self._rotated = path.with_name(path.name + ".1")
        self._max_bytes = max_bytes
        self._fd = _open(path)
        self._redactor = Redactor(secrets)
        self._failures = 0  # lines lost since the last one written

    def protect(self, secrets: Iterable[str]) -> None:
        """Redact these values too: the credentials of accounts a reload adds."""
        self._redactor.add(secrets)

    def record(
        self,
        account: str,
        broker: str,
        at: datetime,
        exchange: Exchange | None,
        error: BrokerError | None,
    ) -> bool:
        """One line: the response seen (status, body, quotes), or the transport error.

        False when the line could not be written; the first such failure is logged, and the
        first line written after it.
        """
        line: dict[str, object] = {"at": at.isoformat(), "account": account, "broker": broker}
        if exchange is None and error is None:
            return True  # nothing came off a wire (the simulator): nothing to replay
        try:
            if exchange is not None and (
                error is None or not 200 <= exchange.status < 300 or isinstance(error, BadResponse)
            ):
                line["status"] = exchange.status
                line["quotes"] = {name: str(price) for name, price in exchange.quotes.items()}
                line["body"] = self._body(exchange.body)
            elif error is not None:
                # No answer, or the poll failed after a good positions answer (a price lookup
                # timed out, the poll ran out of time): the body alone would replay as good.
                line["error"] = self._redactor.scrub(error.reason)
            self._append(_ENCODER.encode(line) + b"\n")
        except (OSError, ValueError, RecursionError) as err:
            if not self._failures:
                log.error("record_failed", file=str(self._path), error=_describe(err))
            self._failures += 1
            return False
        if self._failures:
            log.info("record_recovered", file=str(self._path), lost_lines=self._failures)
            self._failures = 0
        return True

    def _append(self, data: bytes) -> None:
        size = os.fstat(self._fd).st_size
        if size and size + len(data) > self._max_bytes:
            os.replace(self._path, self._rotated)
            fd = _open(self._path)
            os.close(self._fd)
            self._fd, size = fd, 0
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            if len(view) < len(data):  # a partial line would end the replay of all after it
                os.ftruncate(self._fd, size)
            raise

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
            return {
                key: secret_value(item) if is_secret_name(key) else self._scrubbed(item)
                for key, item in value.items()
            }
        return value

    def close(self) -> None:
        """Close the file."""
        os.close(self._fd)


def _open(path: Path) -> int:
    # The positions in it are as private as the state file's: a new file is owner-only.
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


def _describe(err: Exception) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror  # "No space left on device"
    return type(err).__name__


# Numbers pass through as Decimal, so a recorded body keeps every digit the broker sent.
_DECODER = msgspec.json.Decoder(float_hook=Decimal)
_ENCODER = msgspec.json.Encoder(decimal_format="number")
