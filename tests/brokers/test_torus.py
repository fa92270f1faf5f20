"""Torus net-position parser: the seed (verbatim and repaired), exact decimals, malformed bodies."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from monitor.brokers import torus
from monitor.brokers.errors import BadResponse
from monitor.model import PositionKey
from tests.brokers.bodies import edit_first_row

FIXTURES = Path(__file__).parent / "fixtures" / "torus"
ACCOUNT = "torus-main"
TAKEN_AT = datetime(2026, 11, 23, 9, 20, 5, tzinfo=ZoneInfo("Asia/Kolkata"))
RELIANCE = PositionKey(ACCOUNT, "BSE_E", "500325", "C")
SEED = (FIXTURES / "netposition.json").read_bytes()


def parse(raw: bytes):
    return torus.parse(raw, account=ACCOUNT, taken_at=TAKEN_AT, quotes={})


def seed_with_row(**changes: object) -> bytes:
    """The repaired seed sample with fields of its one row replaced (None deletes the field)."""
    return edit_first_row(SEED, "data", **changes)


def raw_row(fields: str) -> bytes:
    """A success body with one row written as raw JSON text (so numbers keep their spelling)."""
    return (
        b'{"status": "success", "message": "Success", "data": [{"symbol": "RELIANCE", '
        b'"exchange": "BSE", "segment": "E", "security_id": "500325", "product": "C", '
        + fields.encode()
        + b"}]}"
    )


def test_verbatim_seed_with_trailing_comma_is_not_valid_json():
    """The seed sample as published ends in "],\\n}": a BadResponse saying not valid JSON."""
    with pytest.raises(BadResponse) as info:
        parse((FIXTURES / "netposition-seed-verbatim.json").read_bytes())

    assert type(info.value) is BadResponse
    assert str(info.value).startswith("torus: body: not valid JSON")


def test_repaired_seed_parses_to_expected_position():
    """With the trailing comma removed, the seed's RELIANCE short keys on (BSE_E, 500325, C)."""
    snapshot = parse(SEED)

    assert snapshot.account == ACCOUNT
    assert snapshot.broker == "torus"
    assert snapshot.taken_at == TAKEN_AT
    assert list(snapshot.positions) == [RELIANCE]
    position = snapshot.positions[RELIANCE]
    assert position.symbol == "RELIANCE"
    assert position.net_qty == Decimal("-1")
    # mtm = realised_profit 0 + mtm 0 = 0
    assert position.mtm == 0
    assert position.realized == 0
    assert position.unrealized == 0
    assert position.ltp == 0  # last_traded_price 0 in the sample
    # a short's average price is sell_avg 2600 (buy_avg is 0)
    assert position.avg_price == Decimal("2600")


def test_mtm_adds_realised_profit_and_exact_json_decimals():
    """JSON numbers decode exactly: realised_profit 0.1 + mtm 0.2 is exactly 0.3, not 0.30000..4."""
    raw = raw_row(
        '"net_qty": 3, "realised_profit": 0.1, "mtm": 0.2, '
        '"last_traded_price": 2465.35, "buy_avg": 2400.1, "sell_avg": 0'
    )

    position = parse(raw).positions[RELIANCE]

    assert str(position.realized) == "0.1"
    assert str(position.unrealized) == "0.2"
    # mtm = 0.1 + 0.2 = 0.3 exactly
    assert position.mtm == Decimal("0.3")
    assert position.ltp == Decimal("2465.35")
    assert position.avg_price == Decimal("2400.1")  # long: buy_avg
    assert position.net_qty == 3


def test_mtm_is_realised_plus_unrealised():
    """mtm = realised_profit 1250.50 + mtm -300.25 = 950.25."""
    position = parse(seed_with_row(realised_profit=1250.5, mtm=-300.25)).positions[RELIANCE]

    assert position.mtm == Decimal("950.25")
    assert position.realized == Decimal("1250.5")
    assert position.unrealized == Decimal("-300.25")


def test_numeric_security_id_becomes_string_token():
    """security_id sent as the number 500325 keys the same as the string "500325"."""
    snapshot = parse(seed_with_row(security_id=500325))

    assert list(snapshot.positions) == [RELIANCE]


def test_status_is_case_insensitive():
    """ "Success" is accepted like "success"."""
    document = json.loads(SEED)
    document["status"] = "Success"

    assert list(parse(json.dumps(document).encode()).positions) == [RELIANCE]


def test_same_security_under_two_products_is_two_positions():
    """Invariant 2: 500325 under product C and product I gives two positions."""
    document = json.loads(SEED)
    document["data"].append({**document["data"][0], "product": "I", "net_qty": 4, "mtm": 12})

    snapshot = parse(json.dumps(document).encode())

    intraday = PositionKey(ACCOUNT, "BSE_E", "500325", "I")
    assert list(snapshot.positions) == [RELIANCE, intraday]
    assert snapshot.positions[intraday].net_qty == 4
    assert snapshot.positions[intraday].mtm == 12


def test_non_success_status_raises_bad_response():
    """status "error" is a BadResponse carrying the broker's message."""
    with pytest.raises(BadResponse) as info:
        parse((FIXTURES / "error-status.json").read_bytes())

    assert type(info.value) is BadResponse
    assert str(info.value) == "torus: status error: Unable to fetch net positions"


_DUPLICATE = json.loads(SEED)
_DUPLICATE["data"].append(dict(_DUPLICATE["data"][0]))

MALFORMED = [
    pytest.param(b'{"status": "success", "data": [}', "body: not valid JSON", id="invalid-json"),
    pytest.param(SEED[: len(SEED) // 2], "body: not valid JSON", id="truncated"),
    pytest.param(b"<html>502 Bad Gateway</html>", "body: not valid JSON", id="html"),
    pytest.param(b"", "body: not valid JSON", id="empty"),
    pytest.param(b'{"message": "Success", "data": []}', "status", id="status-missing"),
    pytest.param(b'{"status": "success", "message": "x"}', "data: missing", id="data-missing"),
    pytest.param(
        seed_with_row(security_id=None),
        "data[0]: Object missing required field `security_id`",
        id="security-id-missing",
    ),
    pytest.param(
        seed_with_row(realised_profit=None),
        "data[0]: Object missing required field `realised_profit`",
        id="realised-missing",
    ),
    pytest.param(seed_with_row(net_qty="abc"), "data[0].net_qty", id="wrong-type-str"),
    pytest.param(seed_with_row(exchange=5), "data[0].exchange", id="wrong-type-number"),
    pytest.param(seed_with_row(net_qty="NaN"), "data[0].net_qty", id="nan-string"),
    pytest.param(raw_row('"net_qty": NaN, "realised_profit": 0, "mtm": 0'), "body", id="nan-lit"),
    pytest.param(seed_with_row(mtm="Infinity"), "data[0].mtm", id="infinite-mtm"),
    pytest.param(json.dumps(_DUPLICATE).encode(), "data[1]: duplicate position", id="duplicate"),
]


@pytest.mark.parametrize(("raw", "fragment"), MALFORMED)
def test_malformed_body_raises_bad_response_naming_the_path(raw, fragment):
    """Every malformed body is a BadResponse, prefixed with the broker and naming the field/path."""
    with pytest.raises(BadResponse) as info:
        parse(raw)

    assert type(info.value) is BadResponse
    assert str(info.value).startswith("torus: ")
    assert fragment in str(info.value)


def test_opposite_infinities_are_bad_response():
    """realised_profit "Infinity" with mtm "-Infinity" is a BadResponse, not a decimal error."""
    with pytest.raises(BadResponse):
        parse(seed_with_row(realised_profit="Infinity", mtm="-Infinity"))


@pytest.mark.parametrize("field", ["last_traded_price", "sell_avg"])
def test_non_finite_price_is_bad_response(field):
    """A NaN price field must not reach the snapshot as Decimal('NaN')."""
    with pytest.raises(BadResponse):
        parse(seed_with_row(**{field: "NaN"}))


# JSON numbers no account can hold, or with more digits than any holds: BadResponse naming the
# field, never a figure that takes minutes to print.
NUMBERS = '"net_qty": {net_qty}, "realised_profit": {realised}, "mtm": {mtm}'


@pytest.mark.parametrize(
    ("numbers", "field", "reason"),
    [
        pytest.param({"net_qty": "-1e999999"}, "net_qty", "out of range", id="qty-exponent"),
        pytest.param({"realised": "1E+1000000"}, "realised_profit", "out of range", id="pnl"),
        pytest.param({"mtm": "1" * 1_000_000}, "mtm", "out of range", id="million-digits"),
        pytest.param({"mtm": "0." + "1" * 1_000_000}, "mtm", "too precise", id="million-decimals"),
        pytest.param({"net_qty": "1e12"}, "net_qty", "out of range", id="qty-at-bound"),
    ],
)
def test_numbers_beyond_the_bounds_are_bad_response(numbers, field, reason):
    """Exponent forms and a million digits, as JSON numbers: BadResponse naming the field."""
    fields = NUMBERS.format(**{"net_qty": "10", "realised": "0", "mtm": "0", **numbers})

    with pytest.raises(BadResponse) as info:
        parse(raw_row(fields))

    assert str(info.value).startswith(f"torus: data[0].{field}: {reason}: ")
    assert len(str(info.value)) < 200


@pytest.mark.parametrize("field", ["last_traded_price", "buy_avg"])
def test_huge_price_is_bad_response(field):
    """A price past 10^15 names its field."""
    with pytest.raises(BadResponse) as info:
        parse(raw_row(f'{NUMBERS.format(net_qty=10, realised=0, mtm=0)}, "{field}": 1e999999'))

    assert str(info.value).startswith(f"torus: data[0].{field}: out of range: ")


def test_mtm_of_bounded_parts_past_the_bound_is_bad_response():
    """realised_profit + mtm, each below 10^15, can sum past it: a BadResponse, not a figure."""
    fields = NUMBERS.format(net_qty=10, realised="900000000000000", mtm="900000000000000")

    with pytest.raises(BadResponse) as info:
        parse(raw_row(fields))

    assert str(info.value) == (
        "torus: data[0]: realised_profit + mtm: out of range: '1800000000000000' is not below "
        "10^15 in magnitude"
    )
