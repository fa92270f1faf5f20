"""Logging setup: structlog for our events, and the stdlib loggers of our libraries routed
through the same processors. JSON lines when the stream is not a terminal, colours when it is.

JSON lines carry UTC times (``...Z``) for machines; a terminal shows times in the zone of the
alerts, with their offset, and leaves the report of raised alerts to the console sink's alert
lines when those print on a terminal too, so an alert shows once (README, "Logs").

Logs go to standard error; standard output belongs to the console alert sink. Every event passes
the `Redactor` before it is rendered, whichever logger wrote it: configured secret values, and
anything shaped like a Telegram bot token or a bearer token, never reach the stream.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from datetime import datetime, tzinfo
from typing import TextIO
from urllib.parse import quote, quote_plus, unquote_plus

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
FLOOD_SECONDS = 60.0  # a repeated error is logged at most once in this time
# A field or query parameter holds a credential when a word of its name contains one of these
# marks (accessToken, SessionToken, sessionid, api_key_secret, Password) or is one of these
# words (sid, neo-fin-key, Auth, mpin); "omsid" and "Authenticated" are not credentials.
_SECRET_MARKS = ("token", "passw", "secret", "session", "cookie", "apikey", "authoriz")
_SECRET_WORDS = frozenset({"sid", "pin", "mpin", "otp", "totp", "pwd", "jwt", "auth", "key"})
# The words of a name: "TwoFAToken" -> Two, FA, Token; "omsId" -> oms, Id (no "sid" in it).
_NAME_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
# `?name=value` / `&name=value` in a URL or a form body.
_QUERY_PARAMETER = re.compile(r"([?&])([^=&\s#?]+)=([^&\s#\"'<>]*)")
# `"name": value` of JSON quoted in text (an error message echoing a body).
_JSON_MEMBER = re.compile(r'"([^"\\]{1,100})"(\s*:\s*)("(?:[^"\\]|\\.)*"|[-+.\w]+)')


class Redactor:
    """Removes configured secrets and token-shaped strings from text and from whole events.

    As a structlog processor it scrubs every string in the event: field values, dict keys,
    nested dicts, lists and tuples, the rendered exception (run it after ``format_exc_info``)
    and the %-formatted message of a stdlib record. Any other value whose ``repr`` carries a
    secret is replaced by its scrubbed ``repr``, since that is what the renderers would print.
    """

    __slots__ = ("_secrets", "_values")

    def __init__(self, secrets: Iterable[str]) -> None:
        self._values: set[str] = set()
        self._secrets: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Redact ``secrets`` too (an account added by a reload brings its credentials)."""
        # Shorter values would redact ordinary words and numbers; longest first, so a secret
        # that contains another is removed whole. A secret in a URL or form body is
        # percent-encoded, in upper- or lower-case hex.
        self._values |= {form for s in secrets if len(s) >= 4 for form in _encoded_forms(s)}
        values = sorted(self._values, key=len, reverse=True)
        self._secrets = re.compile("|".join(map(re.escape, values))) if values else None

    def __call__(self, logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
        for name in list(event):
            if name in _META_KEYS:
                continue
            value = event.pop(name)
            secret = is_secret_name(name)
            event[self.scrub(name)] = secret_value(value) if secret else self._scrubbed(value, 0)
        return event

    def scrub(self, text: str) -> str:
        """``text`` with every secret, bot token, bearer token, and the value of every query
        parameter and quoted JSON member named like a credential, replaced."""
        if self._secrets is not None:
            text = self._secrets.sub(REDACTED, text)
        text = _BOT_TOKEN.sub(REDACTED, text)
        text = _BEARER.sub(rf"\1 {REDACTED}", text)
        if "=" in text:
            text = _QUERY_PARAMETER.sub(_redact_parameter, text)
        if '"' in text:
            text = _JSON_MEMBER.sub(_redact_member, text)
        return text

    def _scrubbed(self, value: object, depth: int) -> object:
        if isinstance(value, str):
            return self.scrub(value)
        if value is None or isinstance(value, bool):
            return value
        if depth < _MAX_DEPTH:
            if isinstance(value, Mapping):
                return {
                    self._scrubbed(k, depth + 1): secret_value(v)
                    if isinstance(k, str) and is_secret_name(k)
                    else self._scrubbed(v, depth + 1)
                    for k, v in value.items()
                }
            if isinstance(value, list | tuple | set | frozenset):
                return [self._scrubbed(item, depth + 1) for item in value]
        # Numbers, exceptions, dataclasses...: the renderers print their repr.
        text = repr(value)
        scrubbed = self.scrub(text)
        return value if scrubbed == text else scrubbed


def is_secret_name(name: str) -> bool:
    """Whether a field or parameter of this name holds a credential (``SessionToken``,
    ``access_token``, ``neo-fin-key``, ``sid``), case aside."""
    words = [word.lower() for word in _NAME_WORDS.findall(name)]
    return any(w in _SECRET_WORDS or any(mark in w for mark in _SECRET_MARKS) for w in words)


def secret_value(value: object) -> object:
    """What stands for the value of a credential field: null and booleans say nothing."""
    return value if value is None or isinstance(value, bool) else REDACTED


def _encoded_forms(secret: str) -> set[str]:
    forms = {secret, quote(secret, safe=""), quote_plus(secret, safe="")}
    return forms | {_PERCENT.sub(lambda m: m[0].lower(), form) for form in forms}


_PERCENT = re.compile(r"%[0-9A-F]{2}")


def _redact_parameter(match: re.Match[str]) -> str:
    separator, name, _ = match.groups()
    if not is_secret_name(unquote_plus(name)):
        return match[0]
    return f"{separator}{name}={REDACTED}"


def _redact_member(match: re.Match[str]) -> str:
    name, colon, value = match.groups()
    if not is_secret_name(name) or value in ("null", "true", "false"):
        return match[0]
    return f'"{name}"{colon}"{REDACTED}"'


class FloodGate(logging.Filter):
    """Lets the first of a repeated error through, then at most one a minute.

    Gated are our events that carry an exception (a crash) and every warning or error of a
    library; our other warnings are logged on a change of state only. Repeats are those of one
    event (or library message) with the same exception type, account and sink; the next one
    let through says how many were dropped since (``suppressed``). A failure met by every one
    of a thousand clients, or by every turn of a loop, is thereby a line a minute, not
    gigabytes of the same traceback. Our events are gated as a structlog processor (before
    their exception is formatted), library records as a filter of the handler.
    """

    def __init__(
        self, period: float = FLOOD_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._period = period
        self._clock = clock
        self._seen: dict[Hashable, tuple[float, int]] = {}  # key -> (let through at, dropped)

    def __call__(self, logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
        record = event.get("_record")
        if record is not None:  # a library's record, let through by ``filter``
            if suppressed := getattr(record, "suppressed", 0):
                event["suppressed"] = suppressed
            return event
        if method not in _GATED_METHODS or not event.get("exc_info"):
            return event  # without a traceback: logged on a change of state, never a flood
        key = (event.get("logger"), event.get("event"), event.get("account"), event.get("sink"))
        suppressed = self._admit((*key, _error_type(event.get("exc_info"))))
        if suppressed is None:
            raise structlog.DropEvent
        if suppressed:
            event["suppressed"] = suppressed
        return event

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, dict) or record.levelno < logging.WARNING:
            return True  # our events went through ``__call__``
        message = str(record.msg).split("\n", 1)[0][:200]  # the template, not its arguments
        error = record.exc_info[0] if record.exc_info else None
        suppressed = self._admit((record.name, message, error))
        if suppressed is None:
            return False
        record.suppressed = suppressed
        return True

    def _admit(self, key: Hashable) -> int | None:
        """None: drop this one; else the number dropped since the last one let through."""
        now = self._clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self._period:
            self._seen[key] = (seen[0], seen[1] + 1)
            return None
        if len(self._seen) >= _MAX_KEYS:  # messages that vary: forget the quiet ones
            self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self._period}
        self._seen[key] = (now, 0)
        return seen[1] if seen is not None else 0


def _error_type(exc_info: object) -> object:
    if exc_info is True:
        return sys.exc_info()[0]
    if isinstance(exc_info, BaseException):
        return type(exc_info)
    if isinstance(exc_info, tuple) and exc_info:
        return exc_info[0]
    return None


_GATED_METHODS = frozenset({"warning", "warn", "error", "exception", "critical", "fatal"})
_MAX_KEYS = 1024


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


class LocalTimeStamper:
    """Stamps an event with the time in ``zone`` to the second, with its UTC offset."""

    __slots__ = ("_zone",)

    def __init__(self, zone: tzinfo | None) -> None:
        self._zone = zone

    def __call__(self, logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
        event["timestamp"] = (
            datetime.now(self._zone).astimezone(self._zone).isoformat("T", "seconds")
        )
        return event


ALERT_EVENTS = frozenset({"alerts_raised"})  # what the console sink's alert lines already say


def drop_alert_events(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """On a terminal that also shows the alert lines, the log does not repeat them."""
    if event.get("event") in ALERT_EVENTS:
        raise structlog.DropEvent
    return event


def colours_wanted(stream: TextIO) -> bool:
    """Colours on a terminal, unless NO_COLOR is set to anything non-empty (no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


class _Handler(logging.StreamHandler[TextIO]):
    """A stream handler whose own error report never prints a record's raw arguments."""

    def __init__(self, stream: TextIO, redactor: Redactor) -> None:
        super().__init__(stream)
        self._redactor = redactor

    def handleError(self, record: logging.LogRecord) -> None:
        # The stdlib default prints the message and its %-args (perhaps a secret) to stderr.
        note = f"logging_error: cannot format a record of {record.name}: {record.msg!r}"
        # A stream closed under us (interpreter shutdown, a test's captured stream) has nowhere
        # left to say it; raising here would only turn a log line into a crash.
        with contextlib.suppress(ValueError, OSError):
            self.stream.write(self._redactor.scrub(note) + self.terminator)


def configure_logging(
    *,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
    json_output: bool | None = None,
    zone: tzinfo | None = None,
    alerts_shown: bool | None = None,
) -> Redactor:
    """Install one handler on the root logger and configure structlog to feed it; the
    redactor it scrubs with, to add secrets to later.

    ``zone`` is the alerts' zone, for times on a terminal (default: the machine's);
    ``alerts_shown`` says the console sink's alert lines are on the same screen (default:
    standard output is a terminal too), so the terminal log need not repeat them.
    """
    stream = stream or sys.stderr
    if json_output is None:
        json_output = not stream.isatty()
    if alerts_shown is None:
        alerts_shown = sys.stdout.isatty()
    redactor = Redactor(secrets)
    gate = FloodGate()
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        gate,  # before the exception is formatted: its type is part of what repeats
        structlog.processors.TimeStamper(fmt="iso", utc=True)
        if json_output
        else LocalTimeStamper(zone),
        structlog.processors.format_exc_info,
        redactor,  # last before rendering: sees the formatted message and traceback text
    ]
    if not json_output and alerts_shown:
        shared.insert(0, drop_alert_events)
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(
            colors=colours_wanted(stream),
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
    handler.addFilter(gate)
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
    # httpx logs request URLs (bot tokens) at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # A library's warning (a deprecation, an unclosed session) is a JSON line like the rest,
    # not raw text in the middle of the stream.
    logging.captureWarnings(True)
    return redactor
