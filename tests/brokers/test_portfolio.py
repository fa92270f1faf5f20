"""Portfolio positions parser: seed sample, error envelopes from the seed, malformed bodies."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from monitor.brokers import portfolio
from monitor.brokers.errors import AuthExpired, BadResponse
from monitor.model import PositionKey
from tests.brokers.bodies import edit_first_row

FIXTURES = Path(__file__).parent / "fixtures" / "portfolio"
ACCOUNT = "portfolio-main"
TAKEN_AT = datetime(2026, 11, 23, 9, 20, 5, tzinfo=ZoneInfo("Asia/Kolkata"))
RELIANCE = PositionKey(ACCOUNT, "nse_cm", "11536", "")
SEED = (FIXTURES / "positions.json").read_bytes()


def parse(raw: bytes):
    return portfolio.parse(raw, account=ACCOUNT, taken_at=TAKEN_AT, quotes={})


def seed_with_row(**changes: object) -> bytes:
    """The seed sample with fields of its one row replaced (None deletes the field)."""
    return edit_first_row(SEED, "data", **changes)


def test_seed_sample_parses_to_expected_position():
    """The documented 10-share RELIANCE long keys on (es, tok, "") with mtm = pnl."""
    snapshot = parse(SEED)

    assert snapshot.account == ACCOUNT
    assert snapshot.broker == "portfolio"
    assert snapshot.taken_at == TAKEN_AT
    assert list(snapshot.positions) == [RELIANCE]
    position = snapshot.positions[RELIANCE]
    assert position.symbol == "RELIANCE-EQ"
    assert position.net_qty == Decimal("10")
    # mtm = pnl = 145.00 (consistent with 10 * (ltp 2465.00 - avgPrice 2450.50) = 145.00)
    assert position.mtm == Decimal("145.00")
    assert position.ltp == Decimal("2465.00")
    assert position.avg_price == Decimal("2450.50")


def test_quotes_are_ignored():
    """The rows carry their own ltp and pnl: a quote for the token changes nothing."""
    snapshot = portfolio.parse(
        SEED, account=ACCOUNT, taken_at=TAKEN_AT, quotes={"nse_cm:11536": Decimal("1")}
    )

    assert snapshot.positions[RELIANCE].ltp == Decimal("2465.00")
    assert snapshot.positions[RELIANCE].mtm == Decimal("145.00")


def test_short_position_keeps_negative_quantity_and_loss():
    """A short row's negative netQty and negative pnl pass through unchanged."""
    position = parse(seed_with_row(pos="S", netQty="-5", pnl="-72.50")).positions[RELIANCE]

    assert position.net_qty == Decimal("-5")
    assert position.mtm == Decimal("-72.50")


def test_same_token_in_two_segments_is_two_positions():
    """Rows for token 11536 on nse_cm and bse_cm are two positions (the key has no product)."""
    document = json.loads(SEED)
    document["data"].append({**document["data"][0], "es": "bse_cm", "pnl": "-3.00"})

    snapshot = parse(json.dumps(document).encode())

    bse = PositionKey(ACCOUNT, "bse_cm", "11536", "")
    assert list(snapshot.positions) == [RELIANCE, bse]
    assert snapshot.positions[bse].mtm == Decimal("-3.00")


@pytest.mark.parametrize(
    ("fixture", "code"), [("error-401.json", "401"), ("error-403.json", "403")]
)
def test_401_and_403_envelopes_raise_auth_expired(fixture, code):
    """The seed's Status Failed bodies with errorCode 401/403 mean the token is not accepted."""
    with pytest.raises(AuthExpired) as info:
        parse((FIXTURES / fixture).read_bytes())

    assert str(info.value).startswith("portfolio: ")
    assert f"errorCode {code}" in str(info.value)


def test_500_envelope_raises_bad_response():
    """The seed's errorCode 500 body is a BadResponse quoting the broker's message."""
    with pytest.raises(BadResponse) as info:
        parse((FIXTURES / "error-500.json").read_bytes())

    assert type(info.value) is BadResponse
    assert str(info.value) == "portfolio: Status Failed, errorCode 500: Internal server error"


def test_numeric_error_code_401_raises_auth_expired():
    """errorCode sent as the JSON number 401 is treated like the string "401"."""
    raw = b'{"Status": "Failed", "message": "Invalid or expired token", "errorCode": 401}'

    with pytest.raises(AuthExpired):
        parse(raw)


_DUPLICATE = json.loads(SEED)
_DUPLICATE["data"].append(dict(_DUPLICATE["data"][0]))

MALFORMED = [
    pytest.param(b'{"Status": "Success", "data": [', "body: not valid JSON", id="invalid-json"),
    pytest.param(SEED[: len(SEED) // 2], "body: not valid JSON", id="truncated"),
    pytest.param(b"<html>502 Bad Gateway</html>", "body: not valid JSON", id="html"),
    pytest.param(b"", "body: not valid JSON", id="empty"),
    pytest.param(b'{"message": "", "data": []}', "Status", id="status-missing"),
    pytest.param(b'{"Status": "Success", "message": ""}', "data: missing", id="data-missing"),
    pytest.param(seed_with_row(tok=None), "data[0]: Object missing required field `tok`", id="tok"),
    pytest.param(seed_with_row(pnl=None), "data[0]: Object missing required field `pnl`", id="pnl"),
    pytest.param(seed_with_row(netQty="abc"), "data[0].netQty", id="wrong-type-str"),
    pytest.param(seed_with_row(es=7), "data[0].es", id="wrong-type-number"),
    pytest.param(seed_with_row(netQty="NaN"), "data[0].netQty", id="nan-qty"),
    pytest.param(seed_with_row(pnl="Infinity"), "data[0].pnl", id="infinite-pnl"),
    pytest.param(seed_with_row(pnl="-Infinity"), "data[0].pnl", id="minus-infinite-pnl"),
    pytest.param(json.dumps(_DUPLICATE).encode(), "data[1]: duplicate position", id="duplicate"),
]


@pytest.mark.parametrize(("raw", "fragment"), MALFORMED)
def test_malformed_body_raises_bad_response_naming_the_path(raw, fragment):
    """Every malformed body is a BadResponse, prefixed with the broker and naming the field/path."""
    with pytest.raises(BadResponse) as info:
        parse(raw)

    assert type(info.value) is BadResponse
    assert str(info.value).startswith("portfolio: ")
    assert fragment in str(info.value)


@pytest.mark.parametrize("field", ["ltp", "avgPrice"])
def test_non_finite_price_is_bad_response(field):
    """A NaN ltp/avgPrice must not reach the snapshot as Decimal('NaN')."""
    with pytest.raises(BadResponse):
        parse(seed_with_row(**{field: "NaN"}))


# A figure no account can hold, or written with more digits than any holds: each would take
# the event loop for most of a minute to print, so the parser refuses it and names the field.
MILLION_DIGITS = "1" * 1_000_000
MILLION_DECIMALS = "0." + "1" * 1_000_000


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        pytest.param("netQty", "-1e999999", "out of range", id="qty-exponent"),
        pytest.param("pnl", "1E+1000000", "out of range", id="pnl-exponent"),
        pytest.param("ltp", MILLION_DIGITS, "out of range", id="ltp-million-digits"),
        pytest.param("avgPrice", MILLION_DECIMALS, "too precise", id="avg-million-decimals"),
        pytest.param("netQty", "1e12", "out of range", id="qty-at-bound"),
        pytest.param("pnl", "-1e15", "out of range", id="pnl-at-bound"),
        pytest.param("pnl", "1e-999999", "too precise", id="pnl-tiny"),
        pytest.param("netQty", "0E-999999", "out of range", id="zero-huge-exponent"),
    ],
)
def test_numbers_beyond_the_bounds_are_bad_response(field, value, reason):
    """Huge exponents, a million digits, a zero written with a huge exponent: BadResponse."""
    with pytest.raises(BadResponse) as info:
        parse(seed_with_row(**{field: value}))

    assert str(info.value).startswith(f"portfolio: data[0].{field}: {reason}: ")
    assert len(str(info.value)) < 200


def test_numbers_just_within_the_bounds_parse():
    """Below 10^12 units, below 10^15 of money, 28 decimal places: all accepted as written."""
    raw = seed_with_row(
        netQty="-999999999999", pnl="999999999999999.99", ltp="0.0000000000000000000000000001"
    )

    position = parse(raw).positions[RELIANCE]

    assert position.net_qty == Decimal("-999999999999")
    assert position.mtm == Decimal("999999999999999.99")
    assert str(position.ltp) == "1E-28"
