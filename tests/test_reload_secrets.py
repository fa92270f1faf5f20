"""A reload that changes an account keeps its credentials out of every output.

The new poller of a changed account, and the `--record` file, must redact the credentials the
reload read, as they did the ones read at start.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

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
