"""Logging: JSON lines, library loggers through the same pipeline, secrets redacted."""

from __future__ import annotations

import io
import json
import logging
import warnings
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

import pytest
import structlog

from monitor.logs import FLOOD_SECONDS, REDACTED, FloodGate, Redactor, configure_logging

# The stdlib loggers our libraries write to (README, "Logs"): each must come out as
# our JSON.
LIBRARY_LOGGERS = (
    "aiohttp.access",
    "aiohttp.client",
    "aiohttp.server",
    "aiohttp.web",
    "telegram.ext.Application",
    "telegram.Bot",
    "httpx",
)

SECRET = "s3cr3t-session-token-value"
PASSWORD = "hunter2-but-longer"
MPIN = "918273"  # numeric: may reach a log as an int
BOT_SECRET = "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
BOT_TOKEN = f"123456789:{BOT_SECRET}"  # not configured: caught by its shape
BEARER = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"  # not configured either
CONFIGURED = (SECRET, PASSWORD, MPIN)
LEAKS = (*CONFIGURED, BOT_TOKEN, BOT_SECRET, BEARER)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@dataclass
class _Credentials:
    user: str
    password: str


pytestmark = pytest.mark.usefixtures("restore_logging")


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _assert_no_leaks(output: str) -> None:
    for leak in LEAKS:
        assert leak not in output, f"{leak!r} leaked:\n{output}"


def test_json_lines_and_stdlib_loggers_share_the_pipeline() -> None:
    """Our events and aiohttp's stdlib records both come out as JSON with level and time."""
    stream = io.StringIO()
    configure_logging(stream=stream, json_output=True)
    structlog.get_logger("monitor.test").info("poll_failed", account="a1", status=503)
    logging.getLogger("aiohttp.client").warning("connection reset by peer")
    first, second = _lines(stream)
    assert first["event"] == "poll_failed" and first["account"] == "a1" and first["status"] == 503
    assert first["level"] == "info" and "timestamp" in first
    assert second["event"] == "connection reset by peer" and second["logger"] == "aiohttp.client"
    assert second["level"] == "warning"


@pytest.mark.parametrize("name", LIBRARY_LOGGERS)
def test_every_library_logger_goes_through_the_processors(name: str) -> None:
    """A record of aiohttp, python-telegram-bot or httpx: JSON, level, time, name."""
    stream = io.StringIO()
    configure_logging(stream=stream, json_output=True)
    logging.getLogger(name).error("job %s failed after %d tries", "poll", 3)
    (line,) = _lines(stream)
    assert line["event"] == "job poll failed after 3 tries"
    assert line["logger"] == name and line["level"] == "error"
    assert str(line["timestamp"]).endswith("Z")


def test_stream_kind_picks_the_renderer() -> None:
    """Not a terminal: JSON lines. A terminal: the colourised console renderer."""
    pipe = io.StringIO()
    configure_logging(stream=pipe)
    logging.getLogger("telegram.ext.Application").warning("flood control")
    assert _lines(pipe)[0]["event"] == "flood control"

    tty = _Tty()
    configure_logging(stream=tty)
    structlog.get_logger("monitor.test").warning("poll_failed", account="a1")
    logging.getLogger("aiohttp.client").warning("connection reset")
    output = tty.getvalue()
    assert "\x1b[" in output  # ANSI colours
    assert "poll_failed" in output and "connection reset" in output
    with pytest.raises(json.JSONDecodeError):
        json.loads(output.splitlines()[0])


def test_configured_secrets_are_redacted_everywhere() -> None:
    """A secret in an event field, a library message or a traceback never reaches the stream."""
    stream = io.StringIO()
    configure_logging(secrets=[SECRET], stream=stream, json_output=True)
    log = structlog.get_logger("monitor.test")
    log.warning("login_failed", reason=f"token {SECRET} rejected")
    logging.getLogger("httpx").error("POST https://api/bot%s/sendMessage", SECRET)
    try:
        raise ValueError(f"bad token {SECRET}")
    except ValueError:
        log.exception("poll_crashed")
    output = stream.getvalue()
    assert SECRET not in output
    assert output.count(REDACTED) >= 3


def _emit_through_every_path() -> None:
    """Every way a secret can reach a log line: ours, the libraries', tracebacks, structures."""
    log = structlog.get_logger("monitor.test")
    # structlog event fields: plain, embedded, numeric, nested, keys, objects, bound context.
    log.warning("login_failed", password=PASSWORD, reason=f"session {SECRET} expired", mpin=918273)
    log.info(
        "request",
        headers={"Authorization": f"Bearer {BEARER}", "x-session-token": SECRET},
        url=f"https://api.telegram.org/bot{BOT_TOKEN}/sendMessage",
        attempts=[{"body": {"pin": MPIN, "tokens": (SECRET, BOT_TOKEN)}}, PASSWORD],
        by_secret={SECRET: "key is the secret"},
        credentials=_Credentials("trader", PASSWORD),
        error=RuntimeError(f"refused {SECRET}"),
    )
    log.bind(token=SECRET).info("bound")
    structlog.contextvars.bind_contextvars(session=SECRET)
    try:
        log.info("contextvar")
    finally:
        structlog.contextvars.clear_contextvars()
    # The event name itself.
    log.error(f"failed for {PASSWORD}")
    # Exceptions: our own, chained, and logged from a library logger with exc_info.
    try:
        try:
            raise KeyError(f"no session for {SECRET}")
        except KeyError as err:
            raise RuntimeError(f"login with {PASSWORD} at /bot{BOT_TOKEN}/getMe") from err
    except RuntimeError:
        log.exception("poll_crashed", account="a1")
        logging.getLogger("telegram.ext.Application").exception("Error while getting Updates")
    # Library loggers with %-args, a dict of args, and messages built before logging.
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.error("POST https://api.telegram.org/bot%s/getMe", BOT_TOKEN)
        library.error("headers %s %r", {"Authorization": f"Bearer {BEARER}"}, [SECRET, MPIN])
        library.error("login %(user)s:%(password)s", {"user": "trader", "password": PASSWORD})
        library.error(f"session {SECRET} and pin {MPIN}")


def test_secrets_never_reach_the_json_stream_by_any_path() -> None:
    """Feed known secrets and token-shaped strings through every path; grep the output."""
    stream = io.StringIO()
    configure_logging(secrets=CONFIGURED, stream=stream, json_output=True)
    _emit_through_every_path()
    output = stream.getvalue()
    _assert_no_leaks(output)
    lines = _lines(stream)
    assert len(lines) == 7 + 4 * len(LIBRARY_LOGGERS)
    assert all(REDACTED in json.dumps(line) for line in lines)
    request = next(line for line in lines if line["event"] == "request")
    # Header fields named like credentials lose their whole value, scheme included.
    assert request["headers"] == {"Authorization": REDACTED, "x-session-token": REDACTED}
    assert request["url"] == "https://api.telegram.org/bot[redacted]/sendMessage"
    crash = next(line for line in lines if line["event"] == "poll_crashed")
    assert "Traceback" in str(crash["exception"]) and "KeyError" in str(crash["exception"])


def test_secrets_never_reach_the_console_by_any_path() -> None:
    """The same on a terminal, where the console renderer formats tracebacks itself."""
    tty = _Tty()
    configure_logging(secrets=CONFIGURED, stream=tty)
    _emit_through_every_path()
    output = tty.getvalue()
    _assert_no_leaks(output)
    assert "Traceback" in output and REDACTED in output


def test_a_record_that_cannot_be_formatted_leaks_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The stdlib's own error report prints raw %-args; ours prints a redacted note instead."""
    stream = io.StringIO()
    configure_logging(secrets=CONFIGURED, stream=stream, json_output=True)
    logging.getLogger("aiohttp.client").error("%d tries with %s", SECRET, PASSWORD)
    captured = capsys.readouterr()
    _assert_no_leaks(stream.getvalue() + captured.out + captured.err)
    assert "logging_error" in stream.getvalue()


def test_httpx_request_lines_are_not_logged_at_info() -> None:
    """httpx logs request URLs (bot tokens) at INFO: those records are dropped."""
    stream = io.StringIO()
    configure_logging(stream=stream, json_output=True)
    logging.getLogger("httpx").info("HTTP Request: POST https://api.telegram.org/bot123:abc/getMe")
    assert stream.getvalue() == ""


class TestRedactorScrub:
    """``Redactor.scrub`` on plain text, as the recorder and the CLI use it."""

    def test_configured_secrets_longest_first(self) -> None:
        redactor = Redactor(["abcd", "abcdefgh"])
        assert redactor.scrub("x abcdefgh y abcd") == f"x {REDACTED} y {REDACTED}"

    def test_short_and_empty_values_are_ignored(self) -> None:
        assert Redactor(["", "ab", "abc"]).scrub("abc ab") == "abc ab"

    def test_bot_token_shapes(self) -> None:
        redactor = Redactor([])
        assert redactor.scrub(f"/bot{BOT_TOKEN}/getMe") == f"/bot{REDACTED}/getMe"
        assert redactor.scrub("12:30 and 123456:short") == "12:30 and 123456:short"

    @pytest.mark.parametrize("prefix", ["Bearer", "bearer", "BEARER"])
    def test_bearer_tokens(self, prefix: str) -> None:
        text = f"Authorization: {prefix} {BEARER}== next"
        assert Redactor([]).scrub(text) == f"Authorization: {prefix} {REDACTED} next"

    def test_scrub_is_idempotent(self) -> None:
        redactor = Redactor([SECRET])
        once = redactor.scrub(f"Bearer {SECRET} /bot{BOT_TOKEN}/x")
        assert redactor.scrub(once) == once == f"Bearer {REDACTED} /bot{REDACTED}/x"

    def test_regex_characters_in_secrets_are_literal(self) -> None:
        assert Redactor(["a.b*c+"]).scrub("a.b*c+ axbbc") == f"{REDACTED} axbbc"


def test_a_library_warning_is_a_json_line() -> None:
    """A warning a library raises (a deprecation, an unclosed session) comes out as our JSON,
    not as raw text between the JSON lines."""
    stream = io.StringIO()
    configure_logging(stream=stream, json_output=True)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("Unclosed client session", ResourceWarning, stacklevel=1)
    (line,) = _lines(stream)
    assert "Unclosed client session" in str(line["event"])
    assert line["logger"] == "py.warnings" and line["level"] == "warning"


def test_credentials_nobody_configured_are_redacted_by_their_names() -> None:
    """A session token a broker issued, in a field named like a credential, a query string or
    a JSON body quoted in a message; and a configured secret percent-encoded in a URL."""
    stream = io.StringIO()
    spaced = "p@ss w0rd!"
    configure_logging(secrets=[spaced], stream=stream, json_output=True)
    issued = "issued-7f6e5d4c"
    log = structlog.get_logger("monitor.test")
    log.warning("login_reply", reply={"data": {"SessionToken": issued, "omsId": 7}}, sid=issued)
    logging.getLogger("aiohttp.client").error("GET https://api/p?x=1&access_token=%s", issued)
    log.error("bad_response", reason=f'body {{"Status": "Ok", "sessionToken": "{issued}"}}')
    log.error("login_url", url=f"https://api/login?user=u&p={quote(spaced)}&q={quote_plus(spaced)}")
    output = stream.getvalue()
    for leak in (issued, quote(spaced), quote_plus(spaced), quote(spaced).lower()):
        assert leak not in output
    reply, query, body, url = _lines(stream)
    assert reply["reply"] == {"data": {"SessionToken": REDACTED, "omsId": 7}}
    assert reply["sid"] == REDACTED
    assert query["event"] == f"GET https://api/p?x=1&access_token={REDACTED}"
    assert body["reason"] == f'body {{"Status": "Ok", "sessionToken": "{REDACTED}"}}'
    assert url["url"] == f"https://api/login?user=u&p={REDACTED}&q={REDACTED}"


def test_a_repeated_error_is_logged_once_not_a_thousand_times() -> None:
    """A thousand crashes of one kind, ours and a library's, are a line each; a crash of
    another kind, or of another account, is still logged; events without a traceback are
    never held back."""
    stream = io.StringIO()
    configure_logging(stream=stream, json_output=True)
    log = structlog.get_logger("monitor.test")
    server = logging.getLogger("aiohttp.server")
    for n in range(1000):
        try:
            raise OSError(24, f"Too many open files ({n})")
        except OSError:
            log.exception("poll_crashed", account="a1")
            server.exception("Error handling request from %s", f"127.0.0.1:{n}")
        log.info("alerts_raised", count=n)
    try:
        raise ValueError("other")
    except ValueError:
        log.exception("poll_crashed", account="a1")
    try:
        raise ValueError("other")
    except ValueError:
        log.exception("poll_crashed", account="a2")
    for _ in range(2):
        log.warning("poll_failed", account="a1")  # a change of state each time
    events = [(line["event"], line.get("account")) for line in _lines(stream)]
    assert events.count(("poll_crashed", "a1")) == 2  # the OSError once, the ValueError once
    assert events.count(("poll_crashed", "a2")) == 1
    assert events.count(("Error handling request from 127.0.0.1:0", None)) == 1
    assert events.count(("alerts_raised", None)) == 1000
    assert events.count(("poll_failed", "a1")) == 2
    assert len(events) == 1006


def test_the_next_repeat_after_a_minute_says_how_many_were_dropped() -> None:
    """Within FLOOD_SECONDS repeats are dropped; the first after it carries the count."""
    now = [0.0]
    gate = FloodGate(clock=lambda: now[0])

    crash = OSError(28, "No space left on device")
    logged = {"event": "outbox_crashed", "logger": "m", "sink": "s", "exc_info": crash}

    def event() -> dict[str, object] | None:
        try:
            return gate(None, "error", dict(logged))
        except structlog.DropEvent:
            return None

    def record() -> bool:
        line = logging.LogRecord("asyncio", logging.ERROR, "", 0, "accept failed", (), None)
        return gate.filter(line) and getattr(line, "suppressed", 0) == (0 if now[0] == 0 else 7)

    assert event() == logged
    assert record()
    for _ in range(7):
        now[0] += 1.0
        assert event() is None
        assert not gate.filter(logging.LogRecord("asyncio", 40, "", 0, "accept failed", (), None))
    now[0] = FLOOD_SECONDS
    assert event() == {**logged, "suppressed": 7}
    assert record()
