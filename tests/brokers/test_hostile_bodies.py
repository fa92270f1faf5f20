"""Bodies that would fool a parser: a key given twice, deep nesting, an almost-empty-book message.

msgspec and the json module both keep the last of two equal keys, so ``"netQty": "10",
"netQty": "-10"`` would silently read as short. Every parser refuses such a body, naming the
key and where it is.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.brokers import FORMATS, kotak_neo, samco
from monitor.brokers.errors import BadResponse

FIXTURES = Path(__file__).parent / "fixtures"
TAKEN_AT = datetime(2026, 11, 23, 3, 50, tzinfo=UTC)


def parse(broker: str, body: bytes):
    return FORMATS[broker].parse(body, account="a", taken_at=TAKEN_AT, quotes={})


def repeated(fixture: str, line: str, again: str) -> bytes:
    """The fixture with ``again`` written right after the first ``line`` in it."""
    text = (FIXTURES / fixture).read_text(encoding="utf-8")
    assert line in text  # the premise: the fixture has the field
    return text.replace(line, f"{line} {again}", 1).encode()


@pytest.mark.parametrize(
    ("broker", "body", "reason"),
    [
        (
            "portfolio",
            repeated("portfolio/positions.json", '"netQty": "10",', '"netQty": "-10",'),
            "data[0]: duplicate key 'netQty'",
        ),
        (
            "samco",
            repeated("samco/positions.json", '"netQuantity": "18",', '"netQuantity": "-18",'),
            "positionDetails[0]: duplicate key 'netQuantity'",
        ),
        (
            "samco",
            repeated("samco/positions.json", '"status": "Success",', '"status": "Failure",'),
            "body: duplicate key 'status'",
        ),
        (
            "torus",
            repeated("torus/netposition.json", '"net_qty": -1,', '"net_qty": 1,'),
            "data[0]: duplicate key 'net_qty'",
        ),
        (
            "alphapoint",
            repeated("alphapoint/positions.json", '"amount":0.0,', '"amount":5.0,'),
            "body[0]: duplicate key 'amount'",
        ),
        (
            "kotak_neo",
            repeated("kotak_neo/positions.json", '"flSellQty": "25",', '"flSellQty": "0",'),
            "data[0]: duplicate key 'flSellQty'",
        ),
        (
            "kotak_neo",
            repeated("kotak_neo/positions.json", '"stat": "Ok",', '"stat": "Not_Ok",'),
            "body: duplicate key 'stat'",
        ),
        (
            "kotak_neo",
            # The same key spelled with an escape: still the same key.
            repeated("kotak_neo/positions.json", '"stat": "Ok",', '"st\\u0061t": "Ok",'),
            "body: duplicate key 'stat'",
        ),
        (
            "kotak_neo",
            b'{"stat": "Ok", "stCode": 200, "data": [{"x": {"k": 1, "k": 2}}]}',
            "data[0].x: duplicate key 'k'",
        ),
    ],
)
def test_a_key_given_twice_is_a_bad_response_naming_it(broker: str, body: bytes, reason: str):
    with pytest.raises(BadResponse) as caught:
        parse(broker, body)
    assert caught.value.reason == reason


def test_kotak_rows_checked_before_are_not_trusted_blindly():
    """A row that was checked in the last body is skipped; a changed row is read again."""
    good = (FIXTURES / "kotak_neo/positions.json").read_bytes()
    _, checked = kotak_neo.decode_rows(good, "a", {})
    assert checked  # the premise: the memo holds the rows
    bad = repeated("kotak_neo/positions.json", '"flSellQty": "25",', '"flSellQty": "0",')
    with pytest.raises(BadResponse, match="duplicate key 'flSellQty'"):
        kotak_neo.decode_rows(bad, "a", checked)


@pytest.mark.parametrize("broker", ["kotak_neo", "portfolio", "samco", "torus", "alphapoint"])
def test_deep_nesting_is_a_bad_response(broker: str):
    """100,000 nested arrays in a field: a BadResponse, never a RecursionError out of the parser."""
    body = b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(BadResponse, match="nested too deeply"):
        parse(broker, body)


def test_kotak_5203_means_empty_only_for_the_documented_message():
    body = b'{"stat": "Not_Ok", "stCode": 5203, "errMsg": "  NO DATA "}'
    assert parse("kotak_neo", body).positions == {}
    retry = b'{"stat": "Not_Ok", "stCode": 5203, "errMsg": "Upstream returned no data, retry"}'
    with pytest.raises(BadResponse, match="Upstream returned no data"):
        parse("kotak_neo", retry)
    described = b'{"stat": "Not_Ok", "stCode": 5203, "errMsg": "x", "desc": "No Data"}'
    with pytest.raises(BadResponse):
        parse("kotak_neo", described)


@pytest.mark.parametrize(
    "message", ["No data", "No positions found, try again later", "No records"]
)
def test_samco_failure_is_empty_only_for_no_positions_found(message: str):
    body = f'{{"status": "Failure", "statusMessage": "{message}"}}'.encode()
    with pytest.raises(BadResponse, match=f"status Failure: {message}"):
        samco.parse(body, account="a", taken_at=TAKEN_AT, quotes={})
    found = b'{"status": "Failure", "statusMessage": " no positions FOUND "}'
    assert samco.parse(found, account="a", taken_at=TAKEN_AT, quotes={}).positions == {}


def test_kotak_rows_seen_in_the_last_body_are_reused_and_changed_rows_decoded_again():
    """A row repeated byte for byte is the last body's decoding (it carries no price); a row
    that changed is decoded again, its new figures and its errors included."""
    good = (FIXTURES / "kotak_neo/positions.json").read_bytes()
    first, known = kotak_neo.decode_rows(good, "a", {})
    again, _ = kotak_neo.decode_rows(good, "a", known)
    assert [row is seen for row, seen in zip(again, first, strict=True)] == [True] * len(first)
    traded = good.replace(b'"flSellQty": "25",', b'"flSellQty": "30",', 1)
    assert traded != good  # the premise: one row changed
    changed, _ = kotak_neo.decode_rows(traded, "a", known)
    assert changed[0] is not first[0]
    assert changed[0].net_qty == first[0].net_qty - 5
    hostile = good.replace(b'"flSellQty": "25",', b'"flSellQty": "1e999999",', 1)
    with pytest.raises(BadResponse, match=r"data\[0\]"):
        kotak_neo.decode_rows(hostile, "a", known)
