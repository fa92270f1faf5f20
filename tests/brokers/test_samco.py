"""Samco positions parser: seed sample, grouped numbers, "--", SELL sign, malformed bodies."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from monitor.brokers import samco
from monitor.brokers.errors import BadResponse
from monitor.model import PositionKey
from tests.brokers.bodies import edit_first_row

FIXTURES = Path(__file__).parent / "fixtures" / "samco"
ACCOUNT = "samco-main"
TAKEN_AT = datetime(2026, 11, 23, 9, 20, 5, tzinfo=ZoneInfo("Asia/Kolkata"))
RELIANCE = PositionKey(ACCOUNT, "BSE", "RELIANCE", "CNC")
SEED = (FIXTURES / "positions.json").read_bytes()


def parse(raw: bytes):
    return samco.parse(raw, account=ACCOUNT, taken_at=TAKEN_AT, quotes={})


def seed_with_row(**changes: object) -> bytes:
    """The seed sample with fields of its one row replaced (None deletes the field)."""
    return edit_first_row(SEED, "positionDetails", **changes)


def key(symbol: str, product: str) -> PositionKey:
    return PositionKey(ACCOUNT, "NSE", symbol, product)


def test_seed_sample_parses_to_expected_position():
    """The documented RELIANCE BUY row keys on (exchange, tradingSymbol, productCode)."""
    snapshot = parse(SEED)

    assert snapshot.account == ACCOUNT
    assert snapshot.broker == "samco"
    assert snapshot.taken_at == TAKEN_AT
    assert list(snapshot.positions) == [RELIANCE]
    position = snapshot.positions[RELIANCE]
    assert position.symbol == "RELIANCE"
    # netQuantity "18", transactionType BUY: stays +18
    assert position.net_qty == Decimal("18")
    # mtm = realizedGainAndLoss 0.00 + unrealizedGainAndLoss -182.70 = -182.70
    # (consistent with 18 * (1550.00 - 1560.15) = 18 * -10.15 = -182.70)
    assert position.mtm == Decimal("-182.70")
    assert position.realized == Decimal("0.00")
    assert position.unrealized == Decimal("-182.70")
    # lastTradedPrice "1,550.00": the thousands separator is dropped
    assert position.ltp == Decimal("1550.00")
    assert position.avg_price == Decimal("1560.15")


def test_sell_row_with_positive_quantity_becomes_short():
    """netQuantity "1,200" with transactionType SELL is a short of -1200; realized "--" counts 0."""
    position = parse((FIXTURES / "mixed-rows.json").read_bytes()).positions[key("SBIN-EQ", "MIS")]

    assert position.net_qty == Decimal("-1200")
    assert position.realized is None
    # mtm = realized "--" (0) + unrealized "2,400.00" = 2400.00
    assert position.mtm == Decimal("2400.00")
    assert position.ltp == Decimal("598.00")
    assert position.avg_price == Decimal("600.00")


def test_open_row_with_empty_unrealized_has_unknown_mtm():
    """An open row whose unrealizedGainAndLoss is "--" has mtm None, not just its realised part."""
    position = parse((FIXTURES / "mixed-rows.json").read_bytes()).positions[key("INFY-EQ", "CNC")]

    assert position.net_qty == Decimal("50")
    assert position.realized == Decimal("120.00")
    assert position.unrealized is None
    assert position.mtm is None
    assert position.ltp is None  # lastTradedPrice "--"
    assert position.avg_price == Decimal("1650.40")


def test_flat_row_with_empty_figures_has_zero_mtm():
    """A flat row with "--" realised and unrealised figures is worth exactly 0."""
    position = parse((FIXTURES / "mixed-rows.json").read_bytes()).positions[key("TCS-EQ", "MIS")]

    assert position.net_qty == 0
    assert position.unrealized == 0
    assert position.mtm == 0
    assert position.ltp == Decimal("3410.00")
    assert position.avg_price is None


def test_sell_row_already_negative_is_not_flipped_back():
    """netQuantity "-10" with SELL stays -10; mtm = -1,050.25 + -55.00 = -1105.25."""
    position = parse((FIXTURES / "mixed-rows.json").read_bytes()).positions[
        key("TATAMOTORS-EQ", "MIS")
    ]

    assert position.net_qty == Decimal("-10")
    assert position.realized == Decimal("-1050.25")
    assert position.mtm == Decimal("-1105.25")


def test_mixed_rows_keep_broker_order():
    """Positions come out in the broker's row order."""
    snapshot = parse((FIXTURES / "mixed-rows.json").read_bytes())

    assert list(snapshot.positions) == [
        key("SBIN-EQ", "MIS"),
        key("INFY-EQ", "CNC"),
        key("TCS-EQ", "MIS"),
        key("TATAMOTORS-EQ", "MIS"),
    ]


def test_lowercase_sell_is_a_short():
    """transactionType is matched case-insensitively: "sell" also flips a positive quantity."""
    position = parse(seed_with_row(transactionType="sell")).positions[RELIANCE]

    assert position.net_qty == Decimal("-18")


def test_numbers_sent_as_json_numbers_are_accepted():
    """netQuantity 18 and unrealizedGainAndLoss -182.7 as JSON numbers parse like the strings."""
    position = parse(seed_with_row(netQuantity=18, unrealizedGainAndLoss=-182.7)).positions[
        RELIANCE
    ]

    assert position.net_qty == Decimal("18")
    assert position.mtm == Decimal("-182.70")


def test_same_symbol_under_two_products_is_two_positions():
    """Invariant 2: RELIANCE under CNC and MIS gives two keys with their own quantities."""
    document = json.loads(SEED)
    row = document["positionDetails"][0]
    document["positionDetails"].append(
        {**row, "productCode": "MIS", "netQuantity": "5", "transactionType": "SELL"}
    )

    snapshot = parse(json.dumps(document).encode())

    mis = PositionKey(ACCOUNT, "BSE", "RELIANCE", "MIS")
    assert list(snapshot.positions) == [RELIANCE, mis]
    assert snapshot.positions[RELIANCE].net_qty == Decimal("18")
    assert snapshot.positions[mis].net_qty == Decimal("-5")


def test_failure_status_raises_bad_response():
    """status Failure is a BadResponse carrying the statusMessage."""
    with pytest.raises(BadResponse) as info:
        parse((FIXTURES / "error-failure.json").read_bytes())

    assert type(info.value) is BadResponse
    assert str(info.value) == "samco: status Failure: Invalid positionType"


_DUPLICATE = json.loads(SEED)
_DUPLICATE["positionDetails"].append(dict(_DUPLICATE["positionDetails"][0]))
ROW = "positionDetails[0]"

MALFORMED = [
    pytest.param(b'{"status": "Success", "positionDetails": [', "body: not valid JSON", id="json"),
    pytest.param(SEED[: len(SEED) // 2], "body: not valid JSON", id="truncated"),
    pytest.param(b"<html>502 Bad Gateway</html>", "body: not valid JSON", id="html"),
    pytest.param(b"", "body: not valid JSON", id="empty"),
    pytest.param(b'{"positionDetails": []}', "status", id="status-missing"),
    pytest.param(b'{"status": "Success"}', "positionDetails: missing", id="data-missing"),
    pytest.param(
        seed_with_row(transactionType=None),
        f"{ROW}: Object missing required field `transactionType`",
        id="transactionType",
    ),
    pytest.param(
        seed_with_row(exchange=None), f"{ROW}: Object missing required field `exchange`", id="ex"
    ),
    pytest.param(seed_with_row(netQuantity="abc"), f"{ROW}.netQuantity: not a number", id="abc"),
    pytest.param(seed_with_row(netQuantity=True), f"{ROW}.netQuantity", id="wrong-type-bool"),
    pytest.param(seed_with_row(netQuantity="--"), f"{ROW}.netQuantity: empty", id="empty-qty"),
    pytest.param(
        seed_with_row(unrealizedGainAndLoss="NaN"), f"{ROW}.unrealizedGainAndLoss", id="nan"
    ),
    pytest.param(seed_with_row(netQuantity="Infinity"), f"{ROW}.netQuantity", id="infinity"),
    pytest.param(
        seed_with_row(lastTradedPrice="-Infinity"), f"{ROW}.lastTradedPrice", id="infinite-ltp"
    ),
    pytest.param(
        json.dumps(_DUPLICATE).encode(), "positionDetails[1]: duplicate position", id="duplicate"
    ),
]


@pytest.mark.parametrize(("raw", "fragment"), MALFORMED)
def test_malformed_body_raises_bad_response_naming_the_path(raw, fragment):
    """Every malformed body is a BadResponse, prefixed with the broker and naming the field/path."""
    with pytest.raises(BadResponse) as info:
        parse(raw)

    assert type(info.value) is BadResponse
    assert str(info.value).startswith("samco: ")
    assert fragment in str(info.value)


def test_overflowing_gain_and_loss_is_bad_response():
    """Finite but huge P&L figures whose sum overflows the decimal context are a BadResponse."""
    raw = seed_with_row(realizedGainAndLoss="9e999999", unrealizedGainAndLoss="9e999999")

    with pytest.raises(BadResponse):
        parse(raw)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        pytest.param("netQuantity", "-1e999999", "out of range", id="qty-exponent"),
        pytest.param("realizedGainAndLoss", "1E+1000000", "out of range", id="pnl-exponent"),
        pytest.param("lastTradedPrice", "1" * 1_000_000, "out of range", id="million-digits"),
        pytest.param("averagePrice", "0." + "1" * 1_000_000, "too precise", id="million-decimals"),
        pytest.param(
            "unrealizedGainAndLoss", "1,000,000,000,000,000.00", "out of range", id="grouped"
        ),
        pytest.param("netQuantity", 1e300, "out of range", id="json-number"),
    ],
)
def test_numbers_beyond_the_bounds_are_bad_response(field, value, reason):
    """Figures no account holds, however written, are a BadResponse naming the field."""
    with pytest.raises(BadResponse) as info:
        parse(seed_with_row(**{field: value}))

    assert str(info.value).startswith(f"samco: {ROW}.{field}: {reason}: ")
    assert len(str(info.value)) < 200


def test_mtm_of_bounded_parts_past_the_bound_is_bad_response():
    """Realised and unrealised P&L each below 10^15 can still sum past it."""
    raw = seed_with_row(
        realizedGainAndLoss="900,000,000,000,000", unrealizedGainAndLoss="900,000,000,000,000"
    )

    with pytest.raises(BadResponse) as info:
        parse(raw)

    assert str(info.value).startswith(
        f"samco: {ROW}: realizedGainAndLoss + unrealizedGainAndLoss: out of range: "
    )
