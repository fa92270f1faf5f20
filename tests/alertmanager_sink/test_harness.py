"""The Alertmanager harness itself: Debian's binary starts, takes an alert through its API and
routes it to a local webhook receiver; amtool accepts the configuration the tests use."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from tests.alertmanager import (  # noqa: F401 - alertmanager_tools is a fixture
    AlertmanagerTools,
    alertmanager_tools,
    running_alertmanager,
    webhook_config,
)
from tests.alertmanager_sink.receiver import Receiver


def test_amtool_accepts_the_test_configuration(
    alertmanager_tools: AlertmanagerTools,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    config = tmp_path / "alertmanager.yml"
    config.write_text(json.dumps(webhook_config("http://127.0.0.1:9/hook")))
    result = alertmanager_tools.amtool_run("check-config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


async def test_an_alert_posted_by_hand_is_listed_and_routed(
    alertmanager_tools: AlertmanagerTools,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    async with Receiver() as receiver:
        with running_alertmanager(
            alertmanager_tools, tmp_path, webhook_config(receiver.url)
        ) as server:
            now = datetime.now(UTC)
            alert = {
                "labels": {"alertname": "by-hand", "account": "a1"},
                "annotations": {"summary": "hello"},
                "startsAt": now.isoformat(),
                "endsAt": (now + timedelta(minutes=5)).isoformat(),
            }
            async with aiohttp.ClientSession() as session:
                posted = await session.post(f"{server.url}/api/v2/alerts", json=[alert])
                assert posted.status == 200, await posted.text()
            listed = server.alerts('alertname="by-hand"')
            assert [a["labels"] for a in listed] == [alert["labels"]]
            async with asyncio.timeout(60):
                notification = await receiver.wait_for("firing", "by-hand")
    assert notification["status"] == "firing"
    assert [a["labels"] for a in notification["alerts"]] == [alert["labels"]]
