"""How figures print and alerts render: never slow, never Infinity, always one line."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from monitor.model import (
    Alert,
    AlertState,
    PositionKey,
    Severity,
    format_money,
    format_qty,
    json_number,
)

AT = datetime(2026, 11, 23, 9, 20, 5, tzinfo=ZoneInfo("Asia/Kolkata"))
# Larger than int() may turn into text (4300 digits): printing through int() raises at once,
# where the 1e999999 a broker once sent took the event loop for most of a minute.
HUGE = Decimal("-1E+5000")


@pytest.mark.parametrize(
    ("qty", "shown"),
    [
        ("25", "25"), ("-25", "-25"), ("25.00", "25"), ("0.5", "0.5"), ("0.50", "0.5"),
        ("-0", "0"), ("2.5E+3", "2500"), ("1" * 29, "1" * 29), ("0E-999999", "0"),
        ("-1E+5000", "-1E+5000"), ("1E-999999", "1E-999999"), ("NaN", "NaN"),
    ],
)  # fmt: skip
def test_format_qty(qty: str, shown: str) -> None:
    """Whole quantities without '.0', fractions as written; a figure too large or small to
    print plainly keeps its exponent."""
    assert format_qty(Decimal(qty)) == shown


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        ("12500", "12,500.00"), ("-0.5", "-0.50"), ("999999999999999.99", "999,999,999,999,999.99"),
        ("1E+1000000", "1E+1000000"), ("-Infinity", "-Infinity"), ("1E-999999", "0.00"),
    ],
)  # fmt: skip
def test_format_money(amount: str, shown: str) -> None:
    """Grouping and two decimals; a figure beyond 30 digits keeps its exponent."""
    assert format_money(Decimal(amount)) == shown


def alert(symbol: str = "RELIANCE-EQ", **details: Decimal) -> Alert:
    key = PositionKey("pf-desk", "nse_cm", "11536", "")
    return Alert(
        "fresh-short", "new_short", Severity.WARNING, "pf-desk", key, symbol, AT,
        f"New short {symbol} (nse_cm): net qty 10 -> -5", details,
    )  # fmt: skip


def test_json_numbers_stay_numbers_and_figures_past_them_become_text() -> None:
    """Ordinary figures are JSON numbers; a huge one or a non-finite one is its text, never a
    float's Infinity (not JSON) nor an int of five thousand digits."""
    line = alert(
        qty=Decimal("-25"), mtm=Decimal("-12500.50"), big=HUGE, fraction=Decimal("1.5E+400"),
        nan=Decimal("NaN"),
    ).to_jsonl()  # fmt: skip

    assert "Infinity" not in line and "NaN" not in line.replace('"NaN"', "")
    assert json.loads(line)["details"] == {
        "qty": -25, "mtm": -12500.5, "big": "-1E+5000", "fraction": "1.5E+400", "nan": "NaN",
    }  # fmt: skip
    assert json_number(Decimal("25.00")) == 25 and isinstance(json_number(Decimal("25.00")), int)


def test_alert_text_line_writes_out_control_characters() -> None:
    """A symbol carrying a newline and a fake alert stays on the alert's own line."""
    forged = "X\n2026-11-23T09:20:05+05:30 CRITICAL desk-drawdown [pf-desk] MTM \u202egone\x1b[2J"

    line = alert(forged).to_line()

    assert line.splitlines() == [line]
    assert line == (
        "2026-11-23T09:20:05+05:30 WARNING  fresh-short [pf-desk] New short X\\n2026-11-23T09:20:05"
        "+05:30 CRITICAL desk-drawdown [pf-desk] MTM \\u202egone\\x1b[2J (nse_cm): net qty 10 -> -5"
    )


def test_alert_json_line_is_one_line_for_every_line_reader() -> None:
    """U+2028, NEL and DEL are escaped too (JSON allows them raw, splitlines breaks at them)."""
    symbol = "A\u2028B\u2029C\x85D\x7fE\x1cF\nG"

    line = alert(symbol).to_jsonl()

    assert line.splitlines() == [line]
    assert json.loads(line)["symbol"] == symbol


def test_alert_read_back_from_its_json_is_the_same_alert() -> None:
    """from_json inverts to_json, the form the outbox stores: figures come back as Decimals."""
    written = alert(qty=Decimal("-25"), mtm=Decimal("-12500.50"))

    read = Alert.from_json(json.loads(json.dumps(written.to_json())))

    assert read == written
    assert read.details == {"qty": Decimal("-25"), "mtm": Decimal("-12500.5")}


def test_resolved_alert_keeps_its_state_through_json_and_says_so_in_text() -> None:
    """``state`` follows ``severity`` in the JSON and reads back; the text line says RESOLVED
    where a firing alert shows its severity."""
    resolved = replace(alert(), state=AlertState.RESOLVED)

    data = json.loads(resolved.to_jsonl())

    assert list(data)[:4] == ["rule", "kind", "severity", "state"]
    assert (data["severity"], data["state"]) == ("warning", "resolved")
    assert Alert.from_json(data) == resolved
    assert resolved.to_line().startswith("2026-11-23T09:20:05+05:30 RESOLVED fresh-short [pf-desk]")
    assert json.loads(alert().to_jsonl())["state"] == "firing"


def test_alert_stored_before_states_existed_reads_as_firing() -> None:
    """An outbox row written without ``state`` is a firing alert: only those existed then."""
    data = alert().to_json()
    del data["state"]

    assert Alert.from_json(data) == alert()
