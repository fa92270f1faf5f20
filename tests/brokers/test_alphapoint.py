"""AlphaPoint GetAccountPositions parser: bare array, any-case fields, quotes, error objects."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from monitor.brokers import alphapoint
from monitor.brokers.errors import AuthExpired, BadResponse
from monitor.model import PositionKey

FIXTURES = Path(__file__).parent / "fixtures" / "alphapoint"
ACCOUNT = "ap-main"
TAKEN_AT = datetime(2026, 11, 23, 3, 50, 5, tzinfo=UTC)
SEED = (FIXTURES / "positions.json").read_bytes()
MIXED = (FIXTURES / "mixed-case.json").read_bytes()
BTC = PositionKey(ACCOUNT, "1", "1", "")
USD = PositionKey(ACCOUNT, "1", "2", "")
ETH = PositionKey(ACCOUNT, "1", "3", "")


def parse(raw: bytes, quotes: dict[str, Decimal] | None = None):
    return alphapoint.parse(raw, account=ACCOUNT, taken_at=TAKEN_AT, quotes=quotes or {})


def rows(*items: dict[str, object]) -> bytes:
    return json.dumps(list(items)).encode()


def row(**fields: object) -> dict[str, object]:
    """A minimal valid balance row, fields overridden (None deletes the field)."""
    base: dict[str, object] = {"omsId": 1, "productSymbol": "BTC", "productId": 1, "amount": 1}
    for name, value in fields.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def test_seed_sample_parses_to_two_flat_balances():
    """The documented BTC and USD rows key on (str(omsId), str(productId), "") with zero MTM."""
    snapshot = parse(SEED)

    assert snapshot.account == ACCOUNT
    assert snapshot.broker == "alphapoint"
    assert snapshot.taken_at == TAKEN_AT
    assert list(snapshot.positions) == [BTC, USD]
    btc, usd = snapshot.positions[BTC], snapshot.positions[USD]
    assert (btc.symbol, usd.symbol) == ("BTC", "USD")
    # amount 0.0 for both: net 0, mtm = 0.0 * (no price) = 0 because amount 0 is worth 0
    assert btc.net_qty == 0
    assert usd.net_qty == 0
    assert btc.mtm == 0
    assert usd.mtm == 0
    assert btc.ltp is None
    assert usd.ltp is None


def test_mixed_case_field_names_and_decimal_amounts():
    """OMSId/ProductId/ProductSymbol/Amount in any case parse; 0.5 stays exactly Decimal("0.5")."""
    quotes = {"ETH": Decimal("3000.10"), "BTC": Decimal("60000")}

    snapshot = parse(MIXED, quotes)

    assert list(snapshot.positions) == [ETH, BTC, USD]
    eth = snapshot.positions[ETH]
    assert eth.symbol == "ETH"
    assert eth.net_qty == Decimal("0.5")
    assert str(eth.net_qty) == "0.5"
    # mtm = amount 0.5 * price 3000.10 = 1500.05
    assert eth.mtm == Decimal("1500.05")
    assert eth.ltp == Decimal("3000.10")
    # mtm = amount -0.25 * price 60000 = -15000
    assert snapshot.positions[BTC].net_qty == Decimal("-0.25")
    assert snapshot.positions[BTC].mtm == Decimal("-15000")


def test_no_quote_and_nonzero_amount_gives_unknown_mtm():
    """Without a price for productSymbol an open balance has mtm None; a zero one has mtm 0."""
    snapshot = parse(MIXED, {"ETH": Decimal("3000.10")})

    assert snapshot.positions[BTC].net_qty == Decimal("-0.25")
    assert snapshot.positions[BTC].mtm is None
    assert snapshot.positions[BTC].ltp is None
    assert snapshot.positions[USD].net_qty == 0
    assert snapshot.positions[USD].mtm == 0


def test_quote_is_looked_up_by_product_symbol():
    """quotes are keyed by productSymbol, not by omsId:productId."""
    snapshot = parse(rows(row(amount=2)), {"1:1": Decimal("5")})

    assert snapshot.positions[BTC].mtm is None


def test_fractional_amount_is_exact():
    """amount 0.1 decodes to exactly Decimal("0.1"), so 0.1 * 3 is exactly 0.3."""
    position = parse(rows(row(amount=0.1)), {"BTC": Decimal("3")}).positions[BTC]

    assert str(position.net_qty) == "0.1"
    assert position.mtm == Decimal("0.3")


def test_same_product_under_two_oms_is_two_positions():
    """productId 1 on OMS 1 and OMS 2 are two positions (omsId is the segment)."""
    snapshot = parse(rows(row(), row(omsId=2, amount=3)), {"BTC": Decimal("10")})

    other = PositionKey(ACCOUNT, "2", "1", "")
    assert list(snapshot.positions) == [BTC, other]
    assert snapshot.positions[BTC].mtm == Decimal("10")
    assert snapshot.positions[other].mtm == Decimal("30")


def test_empty_array_is_an_empty_snapshot():
    """An account with no balances is a good, empty snapshot (not an error)."""
    snapshot = parse(b"[]")

    assert snapshot.positions == {}
    assert snapshot.broker == "alphapoint"


def test_not_authorized_error_object_raises_auth_expired():
    """{"result": false, "errorcode": 20} means not authorized: AuthExpired with the message."""
    with pytest.raises(AuthExpired) as info:
        parse((FIXTURES / "error-not-authorized.json").read_bytes())

    assert str(info.value) == "alphapoint: result false, errorcode 20: Not Authorized"


def test_other_error_code_raises_bad_response():
    """An error object with errorcode 100 is a BadResponse, not an auth failure."""
    with pytest.raises(BadResponse) as info:
        parse((FIXTURES / "error-code-100.json").read_bytes())

    assert type(info.value) is BadResponse
    assert str(info.value) == "alphapoint: result false, errorcode 100: Operation Failed"


def test_error_object_field_names_are_case_insensitive():
    """{"Result": false, "ErrorCode": 20} is recognised like the lower-case form."""
    with pytest.raises(AuthExpired):
        parse(b'{"Result": false, "ErrorMsg": "Not Authorized", "ErrorCode": 20}')


MALFORMED = [
    pytest.param(b'[{"omsId": 1,', "body: not valid JSON", id="invalid-json"),
    pytest.param(SEED[: len(SEED) // 2], "body: not valid JSON", id="truncated"),
    pytest.param(b"<html>502 Bad Gateway</html>", "body: not valid JSON", id="html"),
    pytest.param(b"", "body: not valid JSON", id="empty"),
    pytest.param(b"\xff\xfe\x00", "body: not valid JSON", id="bad-encoding"),
    pytest.param(b"{}", "body: expected an array", id="data-missing-object"),
    pytest.param(b'{"result": true}', "body: expected an array", id="result-true-object"),
    pytest.param(b'"positions"', "body: expected an array", id="string"),
    pytest.param(b"[1]", "[0]: expected an object", id="row-not-object"),
    pytest.param(rows(row(productSymbol=None)), "[0].productSymbol", id="symbol-missing"),
    pytest.param(rows(row(productSymbol="")), "[0].productSymbol", id="symbol-empty"),
    pytest.param(rows(row(omsId=None)), "[0].omsId", id="omsid-missing"),
    pytest.param(rows(row(productId=None)), "[0].productId", id="productid-missing"),
    pytest.param(rows(row(amount=None)), "[0].amount", id="amount-missing"),
    pytest.param(rows(row(amount="abc")), "[0].amount", id="amount-wrong-type"),
    pytest.param(rows(row(amount=True)), "[0].amount", id="amount-bool"),
    pytest.param(rows(row(omsId="1")), "[0].omsId", id="omsid-string"),
    pytest.param(rows(row(productId=1.5)), "[0].productId", id="productid-fraction"),
    pytest.param(rows(row(), row(amount="NaN")), "[1].amount", id="nan-string"),
    pytest.param(
        b'[{"omsId": 1, "productSymbol": "BTC", "productId": 1, "amount": NaN}]',
        "[0].amount",
        id="nan-literal",
    ),
    pytest.param(
        b'[{"omsId": 1, "productSymbol": "BTC", "productId": 1, "amount": -Infinity}]',
        "[0].amount",
        id="infinity-literal",
    ),
    pytest.param(rows(row(), row(amount=2)), "[1]: duplicate position 1|1", id="duplicate"),
    pytest.param(
        rows(row(), {"OMSID": 1, "PRODUCTID": 1, "PRODUCTSYMBOL": "BTC", "AMOUNT": 2}),
        "[1]: duplicate position",
        id="duplicate-other-case",
    ),
]


@pytest.mark.parametrize(("raw", "fragment"), MALFORMED)
def test_malformed_body_raises_bad_response_naming_the_path(raw, fragment):
    """Every malformed body is a BadResponse, prefixed with the broker and naming the field/path."""
    with pytest.raises(BadResponse) as info:
        parse(raw, {"BTC": Decimal("10")})

    assert type(info.value) is BadResponse
    assert str(info.value).startswith("alphapoint: ")
    assert fragment in str(info.value)


def test_mtm_is_the_value_of_the_amount_net_of_the_days_deposits_and_withdrawals():
    """2 BTC after a deposit of 1.5 today and a withdrawal of 0.5: (2 - 1.5 + 0.5) * 60000.
    The net quantity stays the balance."""
    raw = rows(row(amount=2, totalDayDeposits=1.5, totalDayWithdraws=0.5))

    position = parse(raw, {"BTC": Decimal("60000")}).positions[BTC]

    assert (position.net_qty, position.mtm) == (2, Decimal("60000.0"))


def test_totals_are_found_in_any_case_and_count_as_zero_when_absent():
    """TOTALDAYDEPOSITS is totalDayDeposits; a row without totals is valued on its amount."""
    raw = rows(row(amount=3, TOTALDAYDEPOSITS=1), row(productId=2, productSymbol="USD", amount=5))

    snapshot = parse(raw, {"BTC": Decimal("10"), "USD": Decimal("1")})

    assert snapshot.positions[BTC].mtm == 20
    assert snapshot.positions[USD].mtm == 5


def test_a_balance_all_deposited_today_needs_no_price():
    """amount 1 deposited today nets to 0: worth 0 without a price, and not asked a price for;
    amount 0 after a withdrawal of 1 today needs one (unknown without it)."""
    deposited = row(amount=1, totalDayDeposits=1)
    withdrawn = row(productId=2, productSymbol="USD", amount=0, totalDayWithdraws=1)

    snapshot = parse(rows(deposited, withdrawn))

    assert snapshot.positions[BTC].mtm == 0
    assert snapshot.positions[USD].mtm is None
    balances = alphapoint.decode(rows(deposited, withdrawn))
    assert alphapoint.open_symbols(balances) == ["USD"]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        pytest.param("totalDayDeposits", '"1"', "expected a number, got '1'", id="text"),
        pytest.param("totalDayWithdraws", "null", "expected a number, got None", id="null"),
        pytest.param("totalDayDeposits", "1e999999", "out of range: ", id="huge"),
    ],
)
def test_a_bad_day_total_is_bad_response_naming_it(field, value, reason):
    """A total that is not a bounded number is a BadResponse naming the field."""
    raw = (
        b'[{"omsId": 1, "productSymbol": "BTC", "productId": 1, "amount": 1, "'
        + field.encode()
        + b'": '
        + value.encode()
        + b"}]"
    )

    with pytest.raises(BadResponse) as info:
        parse(raw, {"BTC": Decimal("2")})

    assert str(info.value).startswith(f"alphapoint: [0].{field}: {reason}")


def test_deeply_nested_body_is_bad_response():
    """A pathological body of 100,000 open brackets is a BadResponse, not a RecursionError."""
    with pytest.raises(BadResponse):
        parse(b"[" * 100_000)


def test_overflowing_amount_is_bad_response():
    """A finite amount whose value overflows the decimal context is a BadResponse."""
    raw = b'[{"omsId": 1, "productSymbol": "BTC", "productId": 1, "amount": 1e999999999}]'

    with pytest.raises(BadResponse):
        parse(raw, {"BTC": Decimal("2")})


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        pytest.param(b"-1e999999", "out of range", id="exponent"),
        pytest.param(b"1E+1000000", "out of range", id="exponent-plus"),
        pytest.param(b"1" * 1_000_000 + b".5", "out of range", id="million-digits"),
        pytest.param(b"0." + b"1" * 1_000_000, "too precise", id="million-decimals"),
        pytest.param(b"1000000000000", "out of range", id="at-bound"),
    ],
)
def test_amounts_beyond_the_bounds_are_bad_response(amount, reason):
    """An amount no account holds, however written, is a BadResponse naming the field."""
    raw = b'[{"omsId": 1, "productSymbol": "BTC", "productId": 1, "amount": ' + amount + b"}]"

    with pytest.raises(BadResponse) as info:
        parse(raw, {"BTC": Decimal("2")})

    assert str(info.value).startswith(f"alphapoint: [0].amount: {reason}: ")
    assert len(str(info.value)) < 200


def test_value_of_bounded_amount_and_price_past_the_bound_is_bad_response():
    """amount * price, each within its bound, can exceed 10^15: a BadResponse naming both."""
    raw = rows(row(amount=900_000_000_000))

    with pytest.raises(BadResponse) as info:
        parse(raw, {"BTC": Decimal("900000000000000")})

    assert str(info.value).startswith("alphapoint: [0]: net amount * price: out of range: ")


@pytest.mark.parametrize("price", [b"1e999999", b"1" * 1_000_000 + b".5"])
def test_huge_last_traded_price_is_bad_response(price):
    """GetLevel1's LastTradedPx past 10^15 is a BadResponse naming it."""
    body = b'{"InstrumentId": 1, "LastTradedPx": ' + price + b"}"

    with pytest.raises(BadResponse) as info:
        alphapoint.last_price(body, 1)

    assert str(info.value).startswith("alphapoint: GetLevel1.LastTradedPx: out of range: ")


def test_value_with_more_decimal_places_than_any_figure_is_exact_not_an_error():
    """1e-18 of a coin at 1e-14 is worth 1e-32: a product, not a figure read, so no bound on
    its decimal places applies."""
    raw = b'[{"omsId": 1, "productSymbol": "BTC", "productId": 1, "amount": 1e-18}]'

    position = parse(raw, {"BTC": Decimal("1e-14")}).positions[BTC]

    assert position.mtm == Decimal("1e-32")
