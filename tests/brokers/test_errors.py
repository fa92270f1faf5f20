"""Typed broker errors: HTTP status mapping, message shape and poll outcome labels."""

from __future__ import annotations

import pytest

from monitor.brokers import FORMATS
from monitor.brokers.errors import (
    AuthExpired,
    BadResponse,
    BrokerError,
    BrokerUnavailable,
    RateLimited,
    error_for_status,
)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, AuthExpired),
        (403, AuthExpired),
        (429, RateLimited),
        (500, BrokerUnavailable),
        (502, BrokerUnavailable),
        (503, BrokerUnavailable),
        (504, BrokerUnavailable),
        (400, BadResponse),
        (404, BadResponse),
    ],
)
def test_status_maps_to_typed_error(status, kind):
    """Each HTTP status maps to exactly one error class, keeping the status and naming it."""
    err = error_for_status("kotak_neo", status)

    assert type(err) is kind
    assert err.status == status
    assert err.broker == "kotak_neo"
    assert str(err).startswith(f"kotak_neo: HTTP {status}")


def test_rate_limited_keeps_retry_after():
    """A 429 carries the broker's Retry-After seconds through to the poller."""
    err = error_for_status("samco", 429, retry_after=2.5)

    assert isinstance(err, RateLimited)
    assert err.retry_after == 2.5


def test_rate_limited_without_retry_after_is_none():
    """A 429 with no Retry-After leaves retry_after None rather than inventing a delay."""
    err = error_for_status("samco", 429)

    assert isinstance(err, RateLimited)
    assert err.retry_after is None


def test_retry_after_is_ignored_for_other_statuses():
    """Only a 429 becomes RateLimited, even when a 503 also sent Retry-After."""
    err = error_for_status("torus", 503, retry_after=30.0)

    assert type(err) is BrokerUnavailable
    assert not hasattr(err, "retry_after")


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (AuthExpired("portfolio", "x"), "auth_expired"),
        (RateLimited("portfolio", "x", retry_after=None), "rate_limited"),
        (BrokerUnavailable("portfolio", "x"), "unavailable"),
        (BadResponse("portfolio", "x"), "bad_response"),
        (BrokerError("portfolio", "x"), "error"),
    ],
)
def test_outcome_labels(error, outcome):
    """Each error class reports its own poll-outcome metric label."""
    assert error.outcome == outcome


@pytest.mark.parametrize("kind", [AuthExpired, BrokerUnavailable, BadResponse])
def test_message_is_broker_colon_reason(kind):
    """str(err) is "<broker>: <reason>" and the parts stay available as attributes."""
    err = kind("alphapoint", "[0].amount: expected a number", status=200)

    assert str(err) == "alphapoint: [0].amount: expected a number"
    assert err.reason == "[0].amount: expected a number"
    assert err.status == 200


@pytest.mark.parametrize("kind", [AuthExpired, RateLimited, BrokerUnavailable, BadResponse])
def test_every_typed_error_is_a_broker_error(kind):
    """Catching BrokerError catches every typed failure; no typed error subclasses another."""
    assert issubclass(kind, BrokerError)
    others = {AuthExpired, RateLimited, BrokerUnavailable, BadResponse} - {kind}
    assert not any(issubclass(kind, other) for other in others)


def test_formats_register_the_five_parsers():
    """The registry exposes exactly the five wire formats with their trading-day time zones."""
    assert {name: fmt.timezone for name, fmt in FORMATS.items()} == {
        "kotak_neo": "Asia/Kolkata",
        "portfolio": "Asia/Kolkata",
        "samco": "Asia/Kolkata",
        "alphapoint": "UTC",
        "torus": "Asia/Kolkata",
    }
    assert all(fmt.name == name for name, fmt in FORMATS.items())
