"""The daemon polling a live broker (the local portfolio fake): alerts, limits, --record."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from monitor import config, daemon
from monitor.model import Alert
from monitor.replay import replay
from monitor.store import Store
from tests.fakes import serve
from tests.fakes.portfolio import PortfolioState, failed, make_app
from tests.fakes.scripted import json_reply
from tests.waiting import wait_until

TOKEN = "pf-token-5d1e9c3a7b"  # a fake server's token

RULES = """\
accounts:
  - id: p1
    broker: portfolio
    base_url: {base}
    poll_every: 500ms
    window: always
    credentials:
      token: "${{PM_TEST_PORTFOLIO_TOKEN}}"
rules:
  - name: fresh-short
    kind: new_short
  - name: closed
    kind: squared_off
notify:
  - kind: console
    format: json
"""


def committed(state_path: Path) -> list[Alert]:
    """The alerts in the state file."""
    store = Store(state_path)
    try:
        return store.alerts()
    finally:
        store.close()


async def test_live_polls_alert_honour_limits_and_record_a_replayable_session(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Short, then a 500 and a 429, then flat: two alerts once each, Retry-After kept,
    and the recorded file replays to exactly the same alerts."""
    fake = PortfolioState(token=TOKEN)
    async with serve(make_app(fake)) as base:
        rules_path = tmp_path / "rules.yaml"
        rules_path.write_text(RULES.format(base=base))
        loaded = config.load(rules_path)
        state_path, record_path = tmp_path / "state.db", tmp_path / "session.jsonl"
        settings = daemon.Settings(
            state_path, "127.0.0.1", 0, {"p1": {"token": TOKEN}}, record_path
        )
        stop = asyncio.Event()
        running = asyncio.create_task(daemon.run(loaded, settings, stop))
        try:
            await wait_until(lambda: len(fake.requests) >= 2, "a baseline poll and one more")
            fake.rows[0]["netQty"] = "-10"  # RELIANCE turns short
            await wait_until(lambda: len(committed(state_path)) == 1, "the short alert")

            fake.faults.append(failed(500))
            fake.faults.append(json_reply({"Status": "Failed"}, 429, **{"Retry-After": "2"}))
            await wait_until(lambda: not fake.faults, "both faults served")
            limited_at = fake.requests[-1].at
            fake.rows[0]["netQty"] = "0"  # squared off
            await wait_until(lambda: len(committed(state_path)) == 2, "the square-off alert")
        finally:
            stop.set()
            await running

    alerts = committed(state_path)
    assert [(a.rule, a.symbol) for a in alerts] == [
        ("fresh-short", "RELIANCE-EQ"),
        ("closed", "RELIANCE-EQ"),
    ]
    after_limit = [r.at for r in fake.requests if r.at > limited_at]
    assert after_limit, "polling resumed"
    assert after_limit[0] - limited_at >= 2.0, "Retry-After: 2 was honoured"
    assert all(r.headers["Authorization"] == TOKEN for r in fake.requests)

    replayed: list[Alert] = []
    warnings = io.StringIO()
    replay(record_path, loaded, replayed.append, lambda m: print(m, file=warnings))
    assert [a.to_json() for a in replayed] == [a.to_json() for a in alerts]
    assert "HTTP 500" in warnings.getvalue()
    assert "HTTP 429" in warnings.getvalue()
    assert TOKEN not in record_path.read_text()
    printed = [line for line in capsys.readouterr().out.splitlines() if '"rule"' in line]
    assert len(printed) == 2, "each alert reached the console once"
