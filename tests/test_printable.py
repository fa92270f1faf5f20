"""Control characters from outside are written out in every text output: the shared helper,
the console sink, the pretty log renderer and the snapshot table."""

from __future__ import annotations

import io
import logging
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import structlog

from monitor.cli import positions_table
from monitor.logs import configure_logging
from monitor.model import Alert, Position, PositionKey, Severity, Snapshot
from monitor.notify.console.sink import ConsoleSink
from monitor.printable import printable, printable_lines

AT = datetime(2026, 11, 23, 9, 20, 5, tzinfo=ZoneInfo("Asia/Kolkata"))
FAKE_LINE = "\n2026-11-23T09:20:05+05:30 CRITICAL desk-drawdown [pf-desk] MTM fell"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("RELIANCE-EQ M&M é ₹ 日本", "RELIANCE-EQ M&M é ₹ 日本"),
        ("a\nb\rc\td", "a\\nb\\rc\\td"),
        ("\x00\x1b[31m\x7f", "\\x00\\x1b[31m\\x7f"),
        ("\x85\x9f", "\\x85\\x9f"),
        ("\u2028\u2029", "\\u2028\\u2029"),
        ("\u202a\u202e\u2066\u2069", "\\u202a\\u202e\\u2066\\u2069"),
    ],
)
def test_printable_writes_out_controls_and_leaves_the_rest(text: str, shown: str) -> None:
    """C0, DEL, C1, line/paragraph separators and bidi controls; letters and symbols stay."""
    assert printable(text) == shown


def test_printable_lines_keeps_only_the_newline() -> None:
    assert printable_lines("Traceback\nValueError: a\rb\x1b") == "Traceback\nValueError: a\\rb\\x1b"


def short(symbol: str) -> Alert:
    key = PositionKey("pf-desk", "nse_cm", "11536", "")
    return Alert(
        "fresh-short", "new_short", Severity.WARNING, "pf-desk", key, symbol, AT,
        f"New short {symbol} (nse_cm): net qty 10 -> -5", {},
    )  # fmt: skip


async def test_console_text_prints_one_line_per_alert() -> None:
    """A symbol carrying a newline and a fake alert cannot add a line to the console."""
    stream = io.StringIO()

    await ConsoleSink("console", "text", stream).send([short(f"RELIANCE-EQ{FAKE_LINE}")])

    (line,) = stream.getvalue().splitlines()
    assert "RELIANCE-EQ\\n2026-11-23T09:20:05+05:30 CRITICAL" in line


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.usefixtures("restore_logging")
def test_pretty_logs_write_out_control_characters() -> None:
    """On a terminal, a broker's text in the event, in a field or in a library's message
    cannot forge a log line or send the terminal an escape sequence."""
    tty = _Tty()
    configure_logging(stream=tty)
    log = structlog.get_logger("monitor.test")
    log.warning(
        f"poll_failed{FAKE_LINE}", reason=f"Status Failed\x1b[2J{FAKE_LINE}", code="x\u2028y"
    )
    logging.getLogger("aiohttp.client").warning("reset by %s", f"peer{FAKE_LINE}\u202e")

    lines = tty.getvalue().splitlines()
    assert len(lines) == 2
    assert "poll_failed\\n2026-11-23T09:20:05+05:30 CRITICAL" in lines[0]
    assert "Status Failed\\x1b[2J\\n2026" in lines[0] and "'x\\u2028y'" in lines[0]
    assert "reset by peer\\n2026-11-23T09:20:05+05:30 CRITICAL desk-drawdown" in lines[1]
    assert "\\u202e" in lines[1]
    # The renderer's own colours are still there; the broker's escape sequence is not.
    assert "\x1b[" in tty.getvalue() and "\x1b[2J" not in tty.getvalue()


def test_snapshot_table_prints_one_row_per_position() -> None:
    """``position-monitor snapshot``: a newline in a symbol cannot print a fake row."""
    key = PositionKey("pf-desk", "nse_cm\r", "11536", "")
    position = Position(
        key, f"RELIANCE-EQ{FAKE_LINE}", Decimal(10), None, Decimal("2465"), None, None, Decimal(5)
    )
    snapshot = Snapshot("pf-desk", "portfolio", AT, {key: position})

    lines = positions_table(snapshot).splitlines()

    assert len(lines) == 3  # header, the row, the total
    assert lines[1].startswith("RELIANCE-EQ\\n2026-11-23T09:20:05+05:30 CRITICAL")
    assert "nse_cm\\r" in lines[1]
