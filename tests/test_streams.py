"""Standard output carries alerts only; standard error carries log lines only, each one JSON
with its ``level``, whichever command runs (README, "Running in a container")."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_process import DaemonProcess

FIXTURES = Path(__file__).parent / "fixtures" / "streams"
ALERT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\S+ (INFO|WARNING|CRITICAL) +\S+ \[[^\]]+\] ")


def assert_log_lines(lines: list[str]) -> list[dict[str, object]]:
    """Every line a JSON object with a level and an event; the events."""
    events = []
    for line in lines:
        event = json.loads(line)
        assert isinstance(event, dict) and {"level", "event"} <= event.keys(), line
        events.append(event)
    return events


def assert_alert_lines(lines: list[str]) -> None:
    """Every line an alert in the console's text format, none a log line."""
    for line in lines:
        assert ALERT_LINE.match(line), line


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:
        daemon.stop()


def test_run_writes_alerts_to_stdout_and_logs_to_stderr(
    tmp_path: Path, bundled_rules: Path, daemons: list[DaemonProcess]
) -> None:
    """The daemon with the bundled rules (text alerts) and a fast simulator, its metrics
    scraped so the HTTP server has served a request, stopped with SIGTERM."""
    text = bundled_rules.read_text().replace(
        "accounts: []",
        "accounts:\n  - id: sim\n    broker: simulator\n    poll_every: 500ms\n    seed: 3",
    )
    config = tmp_path / "rules.yaml"
    config.write_text(text)
    daemon = DaemonProcess(config, tmp_path / "state.db").start()
    daemons.append(daemon)
    port = daemon.port()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        assert response.status == 200
    daemon.wait_for(lambda d: len(d.stdout_lines) >= 3, 60, "three alert lines")
    assert daemon.terminate() == 0

    assert_alert_lines(daemon.stdout_lines)
    events = assert_log_lines(daemon.log_lines)
    names = {event["event"] for event in events}
    assert {"daemon_started", "alerts_raised", "daemon_stopped"} <= names


def test_replay_writes_alerts_to_stdout_and_its_warnings_to_stderr(bundled_rules: Path) -> None:
    """A recorded day that steps back is logged (trading_day_ahead_of_clock): on stderr, as
    JSON, never between the alerts."""
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "replay", str(FIXTURES / "day_behind.jsonl"),
         "--rules", str(bundled_rules)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    alerts = result.stdout.splitlines()
    assert len(alerts) == 1 and "fresh-short" in alerts[0]
    assert_alert_lines(alerts)
    events = assert_log_lines(result.stderr.splitlines())
    assert [e["event"] for e in events] == ["trading_day_ahead_of_clock"]
    assert events[0]["level"] == "warning"
