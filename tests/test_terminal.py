"""What a terminal shows: each alert once, coloured by severity; log times in the alerts' zone."""

from __future__ import annotations

import io
import json
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import structlog

from monitor.logs import configure_logging
from monitor.model import Alert, AlertState, Severity
from monitor.notify.console.sink import ConsoleSink
from tests.snapshots import ACCOUNT, IST, T0

ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Tty(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def alert(severity: Severity, state: AlertState = AlertState.FIRING) -> Alert:
    return Alert(
        "loss-limit", "mtm_below", severity, ACCOUNT, None, None, T0, "MTM -60,000.00", {}, state
    )


async def printed(stream: io.StringIO, output_format: str = "text") -> list[str]:
    sink = ConsoleSink("console", output_format, stream)
    await sink.send(
        [
            alert(Severity.CRITICAL),
            alert(Severity.WARNING),
            alert(Severity.INFO),
            alert(Severity.CRITICAL, AlertState.RESOLVED),
        ]
    )
    return stream.getvalue().splitlines()


async def test_alert_lines_are_coloured_by_severity_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Critical bold red, warning yellow, info plain, resolved green; the text is unchanged."""
    monkeypatch.delenv("NO_COLOR", raising=False)

    critical, warning, info, resolved = await printed(Tty())

    assert critical.startswith("\x1b[1;31m") and critical.endswith("\x1b[0m")
    assert warning.startswith("\x1b[33m") and warning.endswith("\x1b[0m")
    assert not ANSI.search(info)
    assert resolved.startswith("\x1b[32m")
    assert ANSI.sub("", critical) == alert(Severity.CRITICAL).to_line()


@pytest.mark.parametrize(
    ("stream", "no_color", "output_format"),
    [
        (io.StringIO(), None, "text"),  # a pipe or a file
        (Tty(), "1", "text"),  # NO_COLOR set
        (Tty(), None, "json"),  # JSON is for machines
    ],
)
async def test_no_colour_off_a_terminal_with_no_color_or_in_json(
    monkeypatch: pytest.MonkeyPatch, stream: io.StringIO, no_color: str | None, output_format: str
) -> None:
    """Not a terminal, NO_COLOR, or the JSON format: not one escape sequence."""
    if no_color is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", no_color)

    lines = await printed(stream, output_format)

    assert len(lines) == 4
    assert not any(ANSI.search(line) for line in lines)


def test_a_terminal_log_leaves_raised_alerts_to_the_alert_lines_in_the_alerts_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the alert lines on the same screen, ``alerts_raised`` is not printed again; other
    events are, stamped in the alerts' zone with its offset; NO_COLOR holds for logs too."""
    monkeypatch.setenv("NO_COLOR", "1")
    tty = Tty()
    configure_logging(stream=tty, zone=IST, alerts_shown=True)
    log = structlog.get_logger("monitor.poller")

    log.info("alerts_raised", count=2, account=ACCOUNT)
    log.info("baseline_taken", account=ACCOUNT)

    output = tty.getvalue()
    assert "alerts_raised" not in output
    (line,) = output.splitlines()
    assert "baseline_taken" in line
    stamp = datetime.fromisoformat(line.split()[0])
    assert stamp.utcoffset() == IST.utcoffset(stamp.replace(tzinfo=None))
    assert not ANSI.search(output)


def test_machines_keep_every_event_in_utc() -> None:
    """The JSON log keeps ``alerts_raised`` and UTC times, whatever the zone and terminal."""
    stream = io.StringIO()
    configure_logging(
        stream=stream, json_output=True, zone=ZoneInfo("Asia/Kolkata"), alerts_shown=True
    )

    structlog.get_logger("monitor.poller").info("alerts_raised", count=2)

    (line,) = (json.loads(text) for text in stream.getvalue().splitlines())
    assert line["event"] == "alerts_raised"
    assert line["timestamp"].endswith("Z")


def test_alerts_stay_in_a_terminal_log_when_they_print_elsewhere() -> None:
    """Alert lines redirected to a file: the terminal log still says alerts were raised."""
    tty = Tty()
    configure_logging(stream=tty, zone=IST, alerts_shown=False)

    structlog.get_logger("monitor.poller").info("alerts_raised", count=2)

    assert "alerts_raised" in tty.getvalue()
