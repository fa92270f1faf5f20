"""``run --record FILE``: every poll outcome appended in the replay format (DESIGN section 5).

Bodies are written as the broker sent them, compacted onto one line, so a replay reads the same
digits the daemon read. Every configured secret is removed from each line before it is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import msgspec

from monitor.brokers.errors import BrokerError
from monitor.brokers.transport import Exchange
from monitor.logs import Redactor


class Recorder:
    """Appends one JSON line per poll outcome and flushes it, so a crash loses at most one."""

    def __init__(self, path: Path, secrets: Iterable[str]) -> None:
        self._file = path.open("a", encoding="utf-8")
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
        head: dict[str, object] = {"at": at.isoformat(), "account": account, "broker": broker}
        if exchange is None:
            if error is None:
                return  # nothing came off a wire (the simulator): nothing to replay
            head["error"] = error.reason
            line = json.dumps(head)
        else:
            head["status"] = exchange.status
            head["quotes"] = {name: str(price) for name, price in exchange.quotes.items()}
            line = json.dumps(head)[:-1] + ', "body": ' + _body(exchange.body) + "}"
        self._file.write(self._redactor.scrub(line) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()


def _body(body: bytes) -> str:
    """The body as JSON text on one line: itself if it is JSON, else a JSON string of it."""
    try:
        msgspec.json.decode(body)
    except msgspec.DecodeError:
        return json.dumps(body.decode("utf-8", errors="replace"))
    return msgspec.json.format(body, indent=0).decode()
