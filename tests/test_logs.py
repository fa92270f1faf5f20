"""Logging: JSON lines, library loggers through the same pipeline, secrets redacted."""

from __future__ import annotations

import io
import json
import logging

import structlog

from monitor.logs import REDACTED, configure_logging


def test_json_lines_and_stdlib_loggers_share_the_pipeline() -> None:
    """Our events and aiohttp's stdlib records both come out as JSON with level and time."""
    stream = io.StringIO()
    configure_logging(stream=stream, json_output=True)
    structlog.get_logger("monitor.test").info("poll_failed", account="a1", status=503)
    logging.getLogger("aiohttp.client").warning("connection reset by peer")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["event"] == "poll_failed" and first["account"] == "a1" and first["status"] == 503
    assert first["level"] == "info" and "timestamp" in first
    assert second["event"] == "connection reset by peer" and second["logger"] == "aiohttp.client"
    assert second["level"] == "warning"


def test_configured_secrets_are_redacted_everywhere() -> None:
    """A secret in an event field, a library message or a traceback never reaches the stream."""
    secret = "s3cr3t-session-token-value"
    stream = io.StringIO()
    configure_logging(secrets=[secret], stream=stream, json_output=True)
    log = structlog.get_logger("monitor.test")
    log.warning("login_failed", reason=f"token {secret} rejected")
    logging.getLogger("httpx").error("POST https://api/bot%s/sendMessage", secret)
    try:
        raise ValueError(f"bad token {secret}")
    except ValueError:
        log.exception("poll_crashed")
    output = stream.getvalue()
    assert secret not in output
    assert output.count(REDACTED) >= 3


def test_httpx_request_lines_are_not_logged_at_info() -> None:
    """httpx logs request URLs (bot tokens) at INFO: those records are dropped."""
    stream = io.StringIO()
    configure_logging(stream=stream, json_output=True)
    logging.getLogger("httpx").info("HTTP Request: POST https://api.telegram.org/bot123:abc/getMe")
    assert stream.getvalue() == ""
