"""The Alertmanager sink against Debian's real Alertmanager 0.25, which routes on to a local
webhook receiver: what it lists, what it notifies, resolutions, expiry, re-posts and an outage.

Every wait is for an answer (Alertmanager's API, a notification reaching the receiver) with a
deadline generous for a loaded 2-core machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from monitor.backoff import Backoff
from monitor.config.routing import SinkConfig
from monitor.metrics import Metrics
from monitor.model import Alert, AlertState, PositionKey, Severity, Snapshot
from monitor.notify.alertmanager.config import AlertmanagerSettings
from monitor.notify.alertmanager.sink import AlertmanagerSink
from monitor.notify.outbox import Dispatcher
from monitor.rules.conditions import FiringCondition
from monitor.store import Store
from monitor.store_thread import StoreThread
from tests.alertmanager import (  # noqa: F401 - alertmanager_tools is a fixture
    AlertmanagerServer,
    AlertmanagerTools,
    alertmanager_tools,
    webhook_config,
)
from tests.alertmanager_sink.receiver import Receiver

DEADLINE = 90  # seconds for anything Alertmanager does on a busy machine
KEY = PositionKey("kotak-main", "nse_fo", "53179", "NRML")


def firing_condition(at: datetime) -> Alert:
    return Alert(
        "size-cap", "position_limit", Severity.CRITICAL, "kotak-main", KEY, "BANKNIFTY25DECFUT",
        at, "BANKNIFTY25DECFUT -150 over the cap of 100", {"net_qty": Decimal(-150), "cap": 100},
    )  # fmt: skip


def resolved(alert: Alert, at: datetime) -> Alert:
    return Alert(
        alert.rule, alert.kind, alert.severity, alert.account, alert.key, alert.symbol, at,
        "back under the cap", alert.details, AlertState.RESOLVED,
    )  # fmt: skip


def event(at: datetime) -> Alert:
    return Alert(
        "fresh-short", "new_short", Severity.WARNING, "kotak-main", KEY, "BANKNIFTY25DECFUT",
        at, "new short BANKNIFTY25DECFUT -25", {"net_qty_before": 0, "net_qty": -25},
    )  # fmt: skip


class Harness:
    """One Alertmanager routing to one receiver, and sinks pointed at it."""

    def __init__(self, server: AlertmanagerServer, receiver: Receiver) -> None:
        self.server = server
        self.receiver = receiver
        self.firing: list[FiringCondition] = []
        self.sinks: list[AlertmanagerSink] = []

    def sink(self, name: str = "am", **settings: Any) -> AlertmanagerSink:
        config = SinkConfig(name, "alertmanager")
        values = AlertmanagerSettings(self.server.url, **settings)
        sink = AlertmanagerSink(
            config, values, authorization=None, redact=lambda text: text,
            firing=lambda: self.firing, clock=lambda: datetime.now(UTC),
        )  # fmt: skip
        self.sinks.append(sink)
        return sink

    async def listed(self, what: str, found: Callable[[list[dict[str, Any]]], bool]) -> Any:
        """Poll Alertmanager's API until ``found`` holds for the active alerts."""
        try:
            async with asyncio.timeout(DEADLINE):
                while True:
                    alerts = await asyncio.to_thread(self.server.alerts, active=True)
                    if found(alerts):
                        return alerts
                    await asyncio.sleep(0.2)
        except TimeoutError:
            raise AssertionError(f"Alertmanager never listed {what}; its output:\n"
                                 f"{self.server.logs()}") from None  # fmt: skip

    async def notified(self, status: str, alertname: str) -> dict[str, Any]:
        async with asyncio.timeout(DEADLINE):
            return await self.receiver.wait_for(status, alertname)


@pytest.fixture
async def harness(
    alertmanager_tools: AlertmanagerTools,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> AsyncIterator[Harness]:
    async with Receiver() as receiver:
        server = AlertmanagerServer(alertmanager_tools, tmp_path, webhook_config(receiver.url))
        await asyncio.to_thread(server.start)
        harness = Harness(server, receiver)
        try:
            yield harness
        finally:
            for sink in harness.sinks:
                await sink.close()
            await asyncio.to_thread(server.stop)


def named(alertname: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda alerts: any(a["labels"]["alertname"] == alertname for a in alerts)


async def test_a_firing_condition_is_listed_with_the_design_labels_and_resolves(
    harness: Harness,
) -> None:
    sink = harness.sink(labels=(("team", "desk"),))
    fired = firing_condition(datetime.now(UTC))
    await sink.send([fired])
    (listed,) = await harness.listed("the condition", named("size-cap"))
    assert listed["labels"] == {
        "alertname": "size-cap", "rule_kind": "position_limit", "severity": "critical",
        "account": "kotak-main", "exchange_segment": "nse_fo", "token": "53179",
        "product": "NRML", "symbol": "BANKNIFTY25DECFUT", "team": "desk",
    }  # fmt: skip
    assert listed["annotations"] == {
        "summary": "BANKNIFTY25DECFUT -150 over the cap of 100",
        "details": '{"cap": 100, "net_qty": -150}',
    }
    assert listed["status"]["state"] == "active"
    notification = await harness.notified("firing", "size-cap")
    assert notification["alerts"][0]["labels"] == listed["labels"]

    await sink.send([resolved(fired, datetime.now(UTC))])
    await harness.listed("the condition gone", lambda alerts: not named("size-cap")(alerts))
    gone = await harness.notified("resolved", "size-cap")
    assert gone["alerts"][0]["labels"] == listed["labels"]


async def test_an_event_is_active_once_and_then_expires(harness: Harness) -> None:
    sink = harness.sink(event_expiry=timedelta(seconds=3))
    await sink.send([event(datetime.now(UTC))])
    (listed,) = await harness.listed("the event", named("fresh-short"))
    assert listed["labels"]["rule_kind"] == "new_short"
    assert (await harness.notified("firing", "fresh-short"))["status"] == "firing"
    # Nothing posts it again: it expires by itself, and the receiver hears it ended.
    await harness.listed("the event expired", lambda alerts: not named("fresh-short")(alerts))
    await harness.notified("resolved", "fresh-short")


async def test_a_firing_condition_stays_active_past_its_first_end_by_being_reposted(
    harness: Harness,
) -> None:
    sink = harness.sink(resend_interval=timedelta(seconds=1))  # active 4s after each post
    now = datetime.now(UTC)
    fired = firing_condition(now)
    harness.firing = [
        FiringCondition(
            fired.rule, fired.severity, fired.account, KEY, fired.symbol, now, fired.kind
        )
    ]
    await sink.send([fired])
    (first,) = await harness.listed("the condition", named("size-cap"))
    first_end = datetime.fromisoformat(first["endsAt"])
    resending = asyncio.create_task(sink.run())
    try:
        later = await harness.listed(
            "the condition re-posted past its first end",
            lambda alerts: any(datetime.fromisoformat(a["endsAt"]) > first_end for a in alerts),
        )
        # The premise: the first end has passed, and the alert is still active.
        while datetime.now(UTC) <= first_end + timedelta(seconds=1):
            await asyncio.sleep(0.2)
        (still,) = await harness.listed("the condition still active", named("size-cap"))
    finally:
        resending.cancel()
    assert datetime.fromisoformat(still["endsAt"]) > datetime.now(UTC)
    assert later[0]["annotations"] == first["annotations"]  # the same alert, re-posted
    assert sink.resend_failures == 0
    assert not any(body["status"] == "resolved" for body in harness.receiver.notifications)


async def test_two_replicas_posting_one_alert_make_one_alert_and_two_positions_two(
    harness: Harness,
) -> None:
    now = datetime.now(UTC)
    first, second = harness.sink("replica-0"), harness.sink("replica-1")
    fired = firing_condition(now)
    await first.send([fired])
    await second.send([fired])
    other_key = PositionKey("kotak-main", "nse_fo", "53180", "NRML")
    other = Alert(
        fired.rule, fired.kind, fired.severity, fired.account, other_key, "NIFTY25DECFUT",
        now, fired.message, fired.details,
    )  # fmt: skip
    await second.send([other])
    listed = await harness.listed("both positions", lambda alerts: len(alerts) >= 2)
    assert sorted(a["labels"]["token"] for a in listed) == ["53179", "53180"]


async def test_alerts_committed_while_alertmanager_is_down_arrive_when_it_is_back(
    harness: Harness, tmp_path: Path
) -> None:
    store = Store(tmp_path / "state.db")
    sink = harness.sink()
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    fast = Backoff(initial=0.2, cap=1.0)
    dispatcher = Dispatcher(StoreThread(store), [sink], metrics, backoff=fast)
    await asyncio.to_thread(harness.server.stop)
    now = datetime.now(UTC)
    alerts: Sequence[Alert] = [firing_condition(now), event(now)]
    snapshot = Snapshot("kotak-main", "simulator", now, {})
    store.commit_poll(snapshot, now.date(), [], {}, [(a, ["am"]) for a in alerts])
    delivering = asyncio.create_task(dispatcher.run())
    try:
        # The premise: deliveries were tried and failed while Alertmanager was down.
        async with asyncio.timeout(DEADLINE):
            while not registry.get_sample_value(
                "position_monitor_notifications_total",
                {"sink": "am", "result": "transport_error"},
            ):
                await asyncio.sleep(0.1)
        assert len(store.pending("am")) == 2
        await asyncio.to_thread(harness.server.start)
        await harness.listed("both alerts", lambda found: len(found) == 2)
        async with asyncio.timeout(DEADLINE):
            while store.pending("am"):
                await asyncio.sleep(0.1)
    finally:
        delivering.cancel()
        await asyncio.gather(delivering, return_exceptions=True)
        store.close()
    await harness.notified("firing", "size-cap")
    await harness.notified("firing", "fresh-short")
