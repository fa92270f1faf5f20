"""Kotak Neo positions parser: seed sample, MTM formula, error envelopes, malformed bodies."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from monitor.brokers import kotak_neo
from monitor.brokers.errors import AuthExpired, BadResponse
from monitor.model import PositionKey
from tests.brokers.bodies import edit_first_row

FIXTURES = Path(__file__).parent / "fixtures" / "kotak_neo"
ACCOUNT = "kotak-main"
TAKEN_AT = datetime(2026, 11, 23, 9, 20, 5, tzinfo=ZoneInfo("Asia/Kolkata"))
QUOTE = {"nse_fo:53179": Decimal("45012.50")}
NRML = PositionKey(ACCOUNT, "nse_fo", "53179", "NRML")
MIS = PositionKey(ACCOUNT, "nse_fo", "53179", "MIS")


def body(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def parse(raw: bytes, quotes: dict[str, Decimal] | None = None):
    return kotak_neo.parse(raw, account=ACCOUNT, taken_at=TAKEN_AT, quotes=quotes or {})


def seed_with_row(**changes: object) -> bytes:
    """The seed sample with fields of its one row replaced (None deletes the field)."""
    return edit_first_row(body("positions.json"), "data", **changes)


def test_seed_sample_parses_to_flat_position_with_cash_mtm():
    """The documented sample is one flat NRML row whose MTM is sellAmt - buyAmt, no quote needed."""
    snapshot = parse(body("positions.json"))

    assert snapshot.account == ACCOUNT
    assert snapshot.broker == "kotak_neo"
    assert snapshot.taken_at == TAKEN_AT
    assert list(snapshot.positions) == [NRML]
    position = snapshot.positions[NRML]
    assert position.symbol == "BANKNIFTY21JULFUT"
    # net = (flBuyQty 25 + cfBuyQty 0) - (flSellQty 25 + cfSellQty 0) = 0
    assert position.net_qty == 0
    # mtm = (sellAmt 2625.00 + cfSellAmt 0.00) - (buyAmt 2625.00 + cfBuyAmt 0.00) = 0.00
    assert position.mtm == Decimal("0.00")
    assert position.ltp is None


def test_seed_sample_flat_mtm_ignores_quote():
    """A flat row's MTM stays the cash difference even when a quote is given; ltp is the quote."""
    position = parse(body("positions.json"), QUOTE).positions[NRML]

    # 0 * 45012.50 * factor adds nothing: mtm = 2625.00 - 2625.00 = 0.00
    assert position.mtm == Decimal("0.00")
    assert position.ltp == Decimal("45012.50")


def test_open_position_mtm_matches_hand_computed_formula():
    """Open rows apply cash + net * ltp * multiplier * genNum/genDen * prcNum/prcDen exactly."""
    snapshot = parse(body("open-position.json"), QUOTE)

    assert list(snapshot.positions) == [NRML, MIS]
    nrml = snapshot.positions[NRML]
    # net = (50 + 0) - (25 + 0) = 25
    assert nrml.net_qty == 25
    # cash   = (2625.00 + 0.00) - (5250.00 + 0.00) = -2625.00
    # factor = multiplier 2 * (genNum 1 / genDen 2) * (prcNum 3 / prcDen 4) = 0.75
    # mtm    = -2625.00 + 25 * 45012.50 * 0.75 = -2625.00 + 843984.375 = 841359.375
    assert nrml.mtm == Decimal("841359.375")
    assert nrml.ltp == Decimal("45012.50")

    mis = snapshot.positions[MIS]
    # net  = (flBuyQty 0 + cfBuyQty 10) - (flSellQty 30 + cfSellQty 0) = -20
    assert mis.net_qty == -20
    # cash = (1350000.00 + 0.00) - (0.00 + cfBuyAmt 450000.00) = 900000.00
    # mtm  = 900000.00 + (-20) * 45012.50 * 1 = 900000.00 - 900250.00 = -250.00
    assert mis.mtm == Decimal("-250.00")


def test_same_token_under_two_products_is_two_positions():
    """Invariant 2: token 53179 under NRML and MIS gives two distinct keys, both symbol-tagged."""
    snapshot = parse(body("open-position.json"), QUOTE)

    assert len(snapshot.positions) == 2
    assert {key.product for key in snapshot.positions} == {"NRML", "MIS"}
    assert {p.symbol for p in snapshot.positions.values()} == {"BANKNIFTY21JULFUT"}


def test_open_position_without_quote_has_unknown_mtm():
    """An open row whose quote is missing has mtm None and ltp None (not zero)."""
    snapshot = parse(body("open-position.json"))

    assert snapshot.positions[NRML].net_qty == 25
    assert snapshot.positions[NRML].mtm is None
    assert snapshot.positions[NRML].ltp is None
    assert snapshot.positions[MIS].mtm is None


def test_quote_for_another_token_is_not_used():
    """Quotes are looked up by exSeg:tok; a quote for a different token leaves the MTM unknown."""
    snapshot = parse(body("open-position.json"), {"nse_fo:99999": Decimal("45012.50")})

    assert snapshot.positions[NRML].mtm is None


def test_gen_den_zero_on_open_row_with_quote_is_bad_response():
    """genDen "0" on an open row is a BadResponse naming the divisor, not a ZeroDivision crash."""
    raw = seed_with_row(flBuyQty="50", genDen="0")

    with pytest.raises(BadResponse) as info:
        parse(raw, QUOTE)

    assert type(info.value) is BadResponse
    assert str(info.value).startswith("kotak_neo: ")
    assert "data[0]" in str(info.value)
    assert "genDen" in str(info.value)


def test_gen_den_zero_is_ignored_while_the_formula_does_not_use_it():
    """genDen is only a divisor once a price is known: without a quote the row still parses."""
    raw = seed_with_row(flBuyQty="50", genDen="0")

    (position,) = parse(raw).positions.values()

    assert position.net_qty == Decimal(25)
    assert position.mtm is None


@pytest.mark.parametrize(
    ("fixture", "code"),
    [("error-invalid-session.json", "1003"), ("error-session-100022.json", "100022")],
)
def test_session_expired_stcodes_raise_auth_expired(fixture, code):
    """stat Not_Ok with stCode 1003 or 100022 means the session is gone: AuthExpired."""
    with pytest.raises(AuthExpired) as info:
        parse(body(fixture))

    assert str(info.value).startswith("kotak_neo: ")
    assert f"stCode {code}" in str(info.value)
    assert info.value.outcome == "auth_expired"


def test_session_expired_stcode_as_string_raises_auth_expired():
    """stCode sent as the string "1003" is still recognised as an expired session."""
    raw = b'{"stat":"Not_Ok","stCode":"1003","errMsg":"Invalid session"}'

    with pytest.raises(AuthExpired):
        parse(raw)


def test_other_stcode_raises_bad_response_with_message():
    """Any other Not_Ok stCode is a BadResponse carrying the code and the broker's message."""
    with pytest.raises(BadResponse) as info:
        parse(body("error-other-stcode.json"))

    assert type(info.value) is BadResponse
    assert str(info.value) == ("kotak_neo: stat Not_Ok, stCode 5000: Not able to fetch positions")


SEED = (FIXTURES / "positions.json").read_bytes()
_DUPLICATE = json.loads(SEED)
_DUPLICATE["data"].append(dict(_DUPLICATE["data"][0]))

MALFORMED = [
    pytest.param(b'{"stat": "Ok", "data": [}', "body: not valid JSON", id="invalid-json"),
    pytest.param(SEED[: len(SEED) // 2], "body: not valid JSON", id="truncated"),
    pytest.param(b"<html>502 Bad Gateway</html>", "body: not valid JSON", id="html"),
    pytest.param(b"", "body: not valid JSON", id="empty"),
    pytest.param(b"[]", "body: Expected `object`", id="array-not-object"),
    pytest.param(b'{"stCode": 200, "data": []}', "stat", id="stat-missing"),
    pytest.param(b'{"stat": "Ok", "stCode": 200}', "data: missing", id="data-missing"),
    pytest.param(b'{"stat": "Ok", "data": {}}', "data: Expected `array", id="data-not-array"),
    pytest.param(seed_with_row(tok=None), "data[0]: Object missing required field `tok`", id="tok"),
    pytest.param(seed_with_row(flBuyQty="abc"), "data[0].flBuyQty", id="wrong-type-str"),
    pytest.param(seed_with_row(sellAmt=True), "data[0].sellAmt", id="wrong-type-bool"),
    pytest.param(
        seed_with_row(prod=None), "data[0]: Object missing required field `prod`", id="prod"
    ),
    pytest.param(seed_with_row(flSellQty="NaN"), "data[0].flSellQty: ", id="nan-qty"),
    pytest.param(seed_with_row(cfBuyQty="Infinity"), "data[0].cfBuyQty: ", id="infinite-qty"),
    pytest.param(json.dumps(_DUPLICATE).encode(), "data[1]: duplicate position", id="duplicate"),
]


@pytest.mark.parametrize(("raw", "fragment"), MALFORMED)
def test_malformed_body_raises_bad_response_naming_the_path(raw, fragment):
    """Every malformed body is a BadResponse, prefixed with the broker and naming the field/path."""
    with pytest.raises(BadResponse) as info:
        parse(raw, QUOTE)

    assert type(info.value) is BadResponse
    assert str(info.value).startswith("kotak_neo: ")
    assert fragment in str(info.value)


def test_infinite_amount_on_open_row_with_quote_is_bad_response():
    """buyAmt "Infinity" on an open, quoted row: a BadResponse that names buyAmt."""
    raw = seed_with_row(flBuyQty="50", buyAmt="Infinity")

    with pytest.raises(BadResponse) as info:
        parse(raw, QUOTE)

    assert str(info.value) == "kotak_neo: data[0].buyAmt: not a finite number: Infinity"


@pytest.mark.parametrize("value", ["NaN", "Infinity"])
def test_non_finite_amount_on_flat_row_is_bad_response(value):
    """sellAmt NaN/Infinity on a flat row must not become a NaN/Infinity MTM."""
    with pytest.raises(BadResponse):
        parse(seed_with_row(sellAmt=value))


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"sellAmt": "Infinity", "buyAmt": "Infinity"}, id="inf-minus-inf"),
        pytest.param({"flBuyQty": "sNaN"}, id="signalling-nan"),
        pytest.param({"flBuyQty": "1e999999999"}, id="exponent-overflow"),
    ],
)
def test_decimal_signals_become_bad_response(changes):
    """Amounts that trap in the decimal context still give a BadResponse, not a decimal error."""
    with pytest.raises(BadResponse):
        parse(seed_with_row(**changes))


def test_no_data_answer_is_an_empty_account():
    """stCode 5203 "No Data" (the SDK's reply for an account with no positions) is empty."""
    assert parse(body("no-data.json")).positions == {}


def test_other_5203_failures_still_fail():
    """Only the "No Data" wording means empty: another 5203 message is a failed poll."""
    raw = b'{"stat": "Not_Ok", "stCode": 5203, "errMsg": "Not able to fetch positions"}'
    with pytest.raises(BadResponse):
        parse(raw)


def test_lower_case_ok_stat_is_accepted():
    """Newer SDK docs show "stat": "ok": the same answer as the seed's "Ok"."""
    document = json.loads(body("positions.json"))
    document["stat"] = "ok"
    assert len(parse(json.dumps(document).encode()).positions) == 1


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        pytest.param("flBuyQty", "-1e999999", "out of range", id="qty-exponent"),
        pytest.param("buyAmt", "1E+1000000", "out of range", id="amount-exponent"),
        pytest.param("multiplier", "1" * 1_000_000, "out of range", id="million-digits"),
        pytest.param("cfSellQty", "1e12", "out of range", id="qty-at-bound"),
        pytest.param("genDen", "1e15", "out of range", id="factor-at-bound"),
    ],
)
def test_numbers_beyond_the_bounds_are_bad_response(field, value, reason):
    """A figure no account holds is a BadResponse naming the field, open row or flat."""
    with pytest.raises(BadResponse) as info:
        parse(seed_with_row(**{field: value}), QUOTE)

    assert str(info.value).startswith(f"kotak_neo: data[0].{field}: {reason}: ")
    assert len(str(info.value)) < 200


def test_huge_figures_that_cancel_out_are_still_bad_response():
    """flBuyQty and flSellQty of 1e999999 net to 0, but no account holds either."""
    with pytest.raises(BadResponse) as info:
        parse(seed_with_row(flBuyQty="1e999999", flSellQty="1e999999"))

    assert str(info.value).startswith("kotak_neo: data[0].flBuyQty: out of range: ")


def test_million_decimal_quantity_is_bad_response():
    """A quantity written with a million decimals nets to a figure with too many digits."""
    with pytest.raises(BadResponse) as info:
        parse(seed_with_row(flBuyQty="0." + "0" * 999_999 + "1", flSellQty="0"))

    assert str(info.value).startswith("kotak_neo: data[0]: net quantity: too precise: ")


def test_mtm_of_bounded_figures_past_the_bound_is_bad_response():
    """Quantity and price each within bounds can still price past 10^15: MTM names the row."""
    raw = seed_with_row(flBuyQty="999999999999", flSellQty="0")

    with pytest.raises(BadResponse) as info:
        parse(raw, {"nse_fo:53179": Decimal("999999999999999")})

    assert str(info.value).startswith("kotak_neo: data[0]: MTM: out of range: ")


def test_price_factor_from_tiny_divisors_is_bad_response_not_an_overflow():
    """genDen 1e-999998 gives a finite factor whose product with any price would overflow the
    arithmetic: the factor is out of range and the priced row a BadResponse naming it."""
    raw = seed_with_row(flBuyQty="50", genDen="1e-999998")

    assert parse(raw).positions[NRML].mtm is None  # no price: the row stands, MTM unknown
    with pytest.raises(BadResponse) as info:
        parse(raw, QUOTE)

    assert str(info.value).startswith("kotak_neo: data[0]: price factor: out of range: ")


def test_mtm_with_more_decimal_places_than_any_figure_is_exact_not_an_error():
    """genNum/genDen 1/21 prices to an MTM with 29 decimal places: a result, not a bad figure."""
    raw = seed_with_row(
        flBuyQty="1", flSellQty="0", buyAmt="0", sellAmt="0", genNum="1", genDen="21"
    )

    position = parse(raw, {"nse_fo:53179": Decimal("0.05")}).positions[NRML]

    assert position.mtm == Decimal("0.05") * (Decimal(1) / Decimal(21))
    assert position.mtm.adjusted() == -3
