"""The daemon as a subprocess, polling a fake broker, with an alertmanager sink pointed at
Debian's real Alertmanager 0.25, which routes on to a local webhook receiver: a condition fires
there with the documented labels, resolves there when it resolves in the daemon, and the alerts
committed while Alertmanager is down arrive when it is back.

The broker, the receiver and the waits share the test's event loop; Alertmanager is a process
of its own, started and stopped on a thread. Every wait is for an event (a notification at the
receiver, an answer of Alertmanager's API, a metric, a printed alert) with a deadline generous
for a loaded 2-core machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.alertmanager import (  # noqa: F401 - alertmanager_tools is a fixture
    AlertmanagerServer,
    AlertmanagerTools,
    alertmanager_tools,
    webhook_config,
)
from tests.alertmanager_sink.receiver import Receiver
from tests.fakes.portfolio import PortfolioState, make_app
from tests.leaks import assert_no_secret_leaks
from tests.reliability.harness import (
    PORTFOLIO_TOKEN,
    SECRETS,
    Daemon,
    FakeServer,
    Harness,
    pf_row,
    portfolio_account,
    query,
    until,
)

DEADLINE = 120.0  # seconds for anything the daemon and Alertmanager do on a busy machine
AM_TOKEN = "am-daemon-token-5c7e9a1b3d"
RESEND_FAILURES = "position_monitor_alertmanager_resend_failures_total"
LOSS_LABELS = {
    "alertname": "daily-loss", "rule_kind": "mtm_below", "severity": "critical",
    "account": "p1", "desk": "equities",
}  # fmt: skip
RULES = [
    {"name": "daily-loss", "kind": "mtm_below", "threshold": -500, "send_resolved": True,
     "severity": "critical"},
    {"name": "fresh-short", "kind": "new_short"},
]  # fmt: skip


def losing() -> list[dict[str, str]]:
    return [pf_row("11536", "TCS-EQ", "10", "-1000.00")]


def named(alertname: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda alerts: any(a["labels"]["alertname"] == alertname for a in alerts)


async def listed(
    server: AlertmanagerServer, what: str, found: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """Ask Alertmanager's API for its active alerts until ``found`` holds for them."""
    try:
        async with asyncio.timeout(DEADLINE):
            while True:
                alerts = await asyncio.to_thread(server.alerts, active=True)
                if found(alerts):
                    return alerts
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(
            f"Alertmanager never listed {what}; its output:\n{server.logs()}"
        ) from None


async def notified(receiver: Receiver, status: str, alertname: str, count: int = 1) -> None:
    try:
        async with asyncio.timeout(DEADLINE):
            await receiver.wait_for(status, alertname, count)
    except TimeoutError:
        raise AssertionError(
            f"the receiver never got notification {count} '{status}' for {alertname}:"
            f" {receiver.notifications}"
        ) from None


def pending_at(state: Path, sink: str) -> int:
    sql = (
        "SELECT count(*) FROM deliveries"
        " WHERE sink = ? AND delivered_at IS NULL AND failed_at IS NULL"
    )
    return int(query(state, sql, (sink,))[0][0])


def printed(daemon: Daemon, rule: str, state: str = "firing") -> int:
    return sum(1 for a in daemon.alerts() if a["rule"] == rule and a["state"] == state)


@pytest.mark.timeout(900)
async def test_a_daemon_condition_fires_and_resolves_in_alertmanager_and_outlasts_its_outage(
    alertmanager_tools: AlertmanagerTools,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    broker_state = PortfolioState(PORTFOLIO_TOKEN, rows=losing())
    harness = Harness(tmp_path)
    (tmp_path / "alertmanager").mkdir()
    async with Receiver() as receiver, FakeServer(lambda: make_app(broker_state)) as broker:
        server = AlertmanagerServer(
            alertmanager_tools, tmp_path / "alertmanager", webhook_config(receiver.url)
        )
        await asyncio.to_thread(server.start)
        try:
            sink = {
                "kind": "alertmanager", "name": "am", "url": server.url,
                "labels": {"desk": "equities"}, "resend_interval": "1s",
                "bearer_token": "${AM_TOKEN}",
            }  # fmt: skip
            rules = harness.rules(
                [portfolio_account(broker.base)],
                rules=RULES,
                notify=[{"kind": "console", "format": "json"}, sink],
            )
            daemon = harness.daemon(rules, env={"AM_TOKEN": AM_TOKEN})
            await daemon.started(DEADLINE)
            state = tmp_path / "state.db"
            assert f'{RESEND_FAILURES}{{sink="am"}} 0.0' in await daemon.metrics()

            # Fires: listed with the documented labels and routed on to the receiver. A re-post
            # round may list it first with a summary of its own; the delivery's follows.
            (loss,) = await listed(
                server, "the loss as delivered",
                lambda alerts: any(a["annotations"]["summary"].startswith("MTM") for a in alerts),
            )  # fmt: skip
            assert loss["labels"] == LOSS_LABELS
            assert set(loss["annotations"]) == {"summary", "details"}
            await notified(receiver, "firing", "daily-loss")

            # Resolves in the daemon, so it resolves in Alertmanager and at the receiver.
            broker_state.rows = [pf_row("11536", "TCS-EQ", "10", "200.00")]
            await until(
                lambda: printed(daemon, "daily-loss", "resolved"), "the loss resolved", DEADLINE,
                daemon,
            )  # fmt: skip
            await notified(receiver, "resolved", "daily-loss")
            await listed(server, "the loss gone", lambda alerts: not named("daily-loss")(alerts))

            # Alertmanager goes away; the loss comes back and a short opens meanwhile.
            await asyncio.to_thread(server.stop)
            broker_state.rows = [*losing(), pf_row("2885", "RELIANCE-EQ", "-5", "-50.00")]
            await until(
                lambda: printed(daemon, "daily-loss") >= 2 and printed(daemon, "fresh-short"),
                "the loss again and the new short", DEADLINE, daemon,
            )  # fmt: skip
            # The premise: deliveries and re-posts were tried and failed while it was down.
            await daemon.wait_sample(
                "position_monitor_notifications_total", 1, DEADLINE,
                sink="am", result="transport_error",
            )  # fmt: skip
            await daemon.wait_sample(RESEND_FAILURES, 1, DEADLINE, sink="am")
            assert pending_at(state, "am") >= 2

            # Back on the same port with nothing in memory: the outbox delivers what waited.
            await asyncio.to_thread(server.start)
            back = await listed(
                server, "both alerts again",
                lambda alerts: named("daily-loss")(alerts) and named("fresh-short")(alerts),
            )  # fmt: skip
            await notified(receiver, "firing", "daily-loss", count=2)
            await notified(receiver, "firing", "fresh-short")
            await until(lambda: pending_at(state, "am") == 0, "an empty outbox", DEADLINE, daemon)
            assert await daemon.sigterm(DEADLINE) == 0
        finally:
            for started in harness.daemons:
                started.stop()
            await asyncio.to_thread(server.stop)
    short = next(a for a in back if a["labels"]["alertname"] == "fresh-short")
    assert short["labels"] == {
        "alertname": "fresh-short", "rule_kind": "new_short", "severity": "warning",
        "account": "p1", "exchange_segment": "nse_cm", "token": "2885",
        "symbol": "RELIANCE-EQ", "desk": "equities",
    }  # fmt: skip
    secrets = [AM_TOKEN, *SECRETS.values()]
    assert_no_secret_leaks(secrets, *daemon.log_lines, where="the log")
    assert_no_secret_leaks(secrets, *daemon.stdout_lines, where="the alerts")
    assert_no_secret_leaks(secrets, server.logs(), where="Alertmanager's log")
