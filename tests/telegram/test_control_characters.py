"""Telegram messages write out control characters from outside: a newline in a symbol cannot
start a fake alert line, nor a fake row of /positions."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from monitor.model import Alert, Position, PositionKey, Severity, Snapshot
from monitor.notify.telegram.commands import positions_page
from monitor.notify.telegram.format import group_messages
from tests.fakes.telegram import _parse_problem

AT = datetime(2026, 11, 23, 9, 20, 5, tzinfo=ZoneInfo("Asia/Kolkata"))
FORGED = "M&M\n🔴 CRITICAL desk-drawdown\u202e\x1b[2J"


def test_alert_message_writes_out_control_characters() -> None:
    """The symbol, the message and the account keep their control characters visible."""
    key = PositionKey("kotak\nmain", "nse_cm", "2031", "MIS")
    alert = Alert(
        "fresh-short", "new_short", Severity.WARNING, "kotak\nmain", key, FORGED, AT,
        f"New short {FORGED} (nse_cm MIS): net qty 0 -> -25", {"net_qty": Decimal(-25)},
    )  # fmt: skip

    (message,) = group_messages([alert])

    assert "\x1b" not in message.text and "\u202e" not in message.text
    lines = message.text.split("\n")
    assert not any(line.startswith("🔴") for line in lines)
    assert "<b>M&amp;M\\n🔴 CRITICAL desk-drawdown\\u202e\\x1b[2J</b>" in message.text
    assert lines[0].startswith("<b>kotak\\nmain</b>")
    assert _parse_problem(message.text) == ""


def test_positions_page_prints_one_row_per_position() -> None:
    """/positions: a symbol or product with a newline stays in its own row."""
    key = PositionKey("kotak-main", "nse\nfo", "2031", "M\rIS")
    position = Position(key, FORGED, Decimal(-25), None, None, None, None, Decimal("-10.5"))

    page = positions_page(Snapshot("kotak-main", "kotak_neo", AT, {key: position}), 1, AT)

    table = page.split("<pre>")[1].split("</pre>")[0]
    header, row = table.split("\n")
    assert header.startswith("SYMBOL")
    assert row.startswith("M&amp;M\\n🔴 CRITICAL desk-drawdown\\u…")
    assert row.endswith(" -25 -10")
    assert _parse_problem(page) == ""
