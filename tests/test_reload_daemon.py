"""Reloads of a daemon running in this process: what they keep secret and what they warn of.

The new poller of a changed account, and the `--record` file, must redact the credentials the
reload read, as they did the ones read at start. A setting the command line fixed is not one a
restart would apply from the file.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from monitor import config, daemon
from monitor.brokers.errors import BrokerUnavailable

SECRET = "tok-SECRET-12345"
ROTATED = "tok-ROTATED-67890"  # the credential the reload reads
RULES = """accounts:
  - {id: pf, broker: portfolio, poll_every: %s, base_url: "http://127.0.0.1:9",
     credentials: {token: "${PM_RELOAD_TOKEN}"}}
rules: [{name: fresh-short, kind: new_short}]
notify: [{kind: console, format: json}]
"""


async def test_a_changed_account_stays_redacted_in_its_alerts_and_its_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PM_RELOAD_TOKEN", SECRET)
    path = tmp_path / "rules.yaml"
    path.write_text(RULES % "5s")
    loaded = config.load(path)
    secrets = {a.id: config.resolve_credentials(loaded, a, {"PM_RELOAD_TOKEN": SECRET})
               for a in loaded.accounts}  # fmt: skip
    record = tmp_path / "polls.jsonl"
    settings = daemon.Settings(tmp_path / "state.db", "127.0.0.1", 0, secrets, record)
    running = daemon.Daemon(loaded, settings)
    await running.start()
    try:
        path.write_text(RULES % "6s")  # the account changed: a new poller, new credentials read
        monkeypatch.setenv("PM_RELOAD_TOKEN", ROTATED)
        assert await running.reload() == []
        (poller,) = running.pollers.pollers
        assert poller.account.poll_every.total_seconds() == 6, "the premise: the account changed"
        # What a broker's error message carries reaches the poll_failing alert through this.
        assert ROTATED not in poller._redact(f"broker said {ROTATED}")
        assert running.recorder is not None
        error = BrokerUnavailable("portfolio", f"broker said {ROTATED}")
        running.recorder.record("pf", "portfolio", datetime.now(UTC), None, error)
    finally:
        await running.stop()
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert lines, "the premise: a line was recorded"
    assert ROTATED not in record.read_text()


@pytest.mark.parametrize(
    ("from_flags", "warned"), [(frozenset(), True), (frozenset({"daemon.state"}), False)]
)
async def test_a_state_file_fixed_by_the_command_line_needs_no_restart_warning(
    tmp_path: Path, from_flags: frozenset[str], warned: bool
) -> None:
    path = tmp_path / "rules.yaml"
    rules = (
        "rules: [{name: fresh-short, kind: new_short}]\nnotify: [{kind: console, format: json}]\n"
    )
    path.write_text(rules + f"daemon: {{state: {tmp_path / 'a.db'}}}\n")
    settings = daemon.Settings(tmp_path / "state.db", "127.0.0.1", 0, from_flags=from_flags)
    running = daemon.Daemon(config.load(path), settings)
    await running.start()
    try:
        path.write_text(rules + f"daemon: {{state: {tmp_path / 'b.db'}}}\n")
        with capture_logs() as logs:
            assert await running.reload() == []
    finally:
        await running.stop()
    events = [entry["event"] for entry in logs]
    assert "config_reloaded" in events, "the premise: the reload applied"
    assert ("config_reload_needs_restart" in events) is warned
