"""Logging setup: structlog for our events, and the stdlib loggers of our libraries routed
through the same processors. JSON lines when the stream is not a terminal, colours when it is.

Logs go to standard error; standard output belongs to the console alert sink. Every event passes
the `Redactor` before it is rendered, whichever logger wrote it: configured secret values, and
anything shaped like a Telegram bot token or a bearer token, never reach the stream.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping
from typing import TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from monitor.printable import printable, printable_lines

REDACTED = "[redacted]"

# A Telegram bot token is the bot's numeric id, a colon and a 35-character secret; httpx logs it
# inside every request URL (`.../bot<token>/sendMessage`).
_BOT_TOKEN = re.compile(r"\d{6,}:[A-Za-z0-9_-]{30,}")
# RFC 6750 `b64token` characters, so a token is removed whole and `[redacted]` is left alone.
_BEARER = re.compile(r"\b(bearer)\s+[A-Za-z0-9._~+/-]+=*", re.IGNORECASE)
# ProcessorFormatter's own entries: the LogRecord and a flag, removed before rendering.
_META_KEYS = frozenset({"_record", "_from_structlog"})
# Event fields whose text has lines of its own.
_MULTILINE_KEYS = frozenset({"exception", "stack"})
# Deeper structures are rendered by repr and scrubbed as text.
_MAX_DEPTH = 16


class Redactor:
    """Removes configured secrets and token-shaped strings from text and from whole events.

    As a structlog processor it scrubs every string in the event: field values, dict keys,
    nested dicts, lists and tuples, the rendered exception (run it after ``format_exc_info``)
    and the %-formatted message of a stdlib record. Any other value whose ``repr`` carries a
    secret is replaced by its scrubbed ``repr``, since that is what the renderers would print.
    """

    __slots__ = ("_secrets",)

    def __init__(self, secrets: Iterable[str]) -> None:
        # Shorter values would redact ordinary words and numbers; longest first, so a secret
        # that contains another is removed whole.
        values = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
        self._secrets = re.compile("|".join(map(re.escape, values))) if values else None

    def __call__(self, logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
        for name in list(event):
            if name in _META_KEYS:
                continue
            value = event.pop(name)
            event[self.scrub(name)] = self._scrubbed(value, 0)
        return event

    def scrub(self, text: str) -> str:
        """``text`` with every secret, bot token and bearer token replaced."""
        if self._secrets is not None:
            text = self._secrets.sub(REDACTED, text)
        text = _BOT_TOKEN.sub(REDACTED, text)
        return _BEARER.sub(rf"\1 {REDACTED}", text)

    def _scrubbed(self, value: object, depth: int) -> object:
        if isinstance(value, str):
            return self.scrub(value)
        if value is None or isinstance(value, bool):
            return value
        if depth < _MAX_DEPTH:
            if isinstance(value, Mapping):
                return {
                    self._scrubbed(k, depth + 1): self._scrubbed(v, depth + 1)
                    for k, v in value.items()
                }
            if isinstance(value, list | tuple | set | frozenset):
                return [self._scrubbed(item, depth + 1) for item in value]
        # Numbers, exceptions, dataclasses...: the renderers print their repr.
        text = repr(value)
        scrubbed = self.scrub(text)
        return value if scrubbed == text else scrubbed


def printable_event(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """The message and traceback with control characters written out, for the console renderer,
    which prints them raw (its ``repr_native_str`` escapes the other fields): a broker's text
    cannot forge a log line or recolour the terminal. A traceback keeps its line breaks."""
    message = event.get("event")
    if isinstance(message, str):
        event["event"] = printable(message)
    for name in _MULTILINE_KEYS:
        text = event.get(name)
        if isinstance(text, str):
            event[name] = printable_lines(text)
    return event


class _Handler(logging.StreamHandler[TextIO]):
    """A stream handler whose own error report never prints a record's raw arguments."""

    def __init__(self, stream: TextIO, redactor: Redactor) -> None:
        super().__init__(stream)
        self._redactor = redactor

    def handleError(self, record: logging.LogRecord) -> None:
        # The stdlib default prints the message and its %-args (perhaps a secret) to stderr.
        note = f"logging_error: cannot format a record of {record.name}: {record.msg!r}"
        self.stream.write(self._redactor.scrub(note) + self.terminator)


def configure_logging(
    *, secrets: Iterable[str] = (), stream: TextIO | None = None, json_output: bool | None = None
) -> None:
    """Install one handler on the root logger and configure structlog to feed it."""
    stream = stream or sys.stderr
    if json_output is None:
        json_output = not stream.isatty()
    redactor = Redactor(secrets)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redactor,  # last before rendering: sees the formatted message and traceback text
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(
            colors=stream.isatty(),
            repr_native_str=True,  # every field's string quoted and escaped, not only some
            # The traceback is already text (and redacted); a pretty formatter would re-render
            # it from the live exception, secrets included.
            exception_formatter=structlog.dev.plain_traceback,
        )
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = _Handler(stream, redactor)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *(() if json_output else (printable_event,)),  # JSON escapes them already
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.INFO)
    # APScheduler logs every job run at INFO and every skipped run (a slow broker) at WARNING;
    # skips are counted in a metric instead. httpx logs request URLs (bot tokens) at INFO.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # A library's warning (a deprecation, an unclosed session) is a JSON line like the rest,
    # not raw text in the middle of the stream.
    logging.captureWarnings(True)
