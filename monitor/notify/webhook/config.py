"""The webhook entry of rules.yaml: the receiver's URL, the signing secret's reference and the
request timeout."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from monitor.config import secrets
from monitor.config.problems import Problems, is_http_url, shown_url
from monitor.config.routing import ROUTING_FIELDS, SinkConfig, SinkEntry

FIELDS = (*ROUTING_FIELDS, "url", "secret", "timeout")
DEFAULT_TIMEOUT = timedelta(seconds=10)
_TIMEOUTS = (timedelta(seconds=1), timedelta(minutes=2))


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """Where a webhook posts and how it signs."""

    url: str
    secret: str | None  # "${ENV_VAR}", or None: requests go unsigned
    timeout: timedelta = DEFAULT_TIMEOUT


def read_config(problems: Problems, sink: SinkEntry) -> list[SinkConfig]:
    """A webhook entry: its URL, optional secret reference and timeout, and its routing."""
    entry, owner = sink.entry, sink.owner
    url = entry.get("url")
    if not is_http_url(url):
        reason = "required: an http(s) URL without query or fragment"
        got = "" if url is None else f"; got {shown_url(url)}"
        problems.problem(owner, "url", reason + got, entry.line_of("url"))
    secret = entry.get("secret")
    if secret is not None:
        secrets.require_reference(
            problems, secret, owner, "secret", entry.line_of("secret"),
            example="${WEBHOOK_SECRET}",
        )  # fmt: skip
    timeout = problems.duration(entry, "timeout", owner, DEFAULT_TIMEOUT, _TIMEOUTS)
    settings = WebhookSettings(str(url), None if secret is None else str(secret), timeout)
    return [sink.routed(problems, settings)]
