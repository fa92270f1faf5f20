"""The Alertmanager sink's payloads (pure), its rules.yaml entry, and what each answer of a
local fake Alertmanager means for delivery, with credentials in no output."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from monitor.config import ConfigError, load, resolve_notify
from monitor.config.routing import SinkConfig
from monitor.health import AccountStatus
from monitor.metrics import Metrics
from monitor.model import Alert, AlertState, PositionKey, Severity, Snapshot
from monitor.notify.alertmanager import ALERTMANAGER, payload
from monitor.notify.alertmanager.config import AlertmanagerSettings
from monitor.notify.alertmanager.sink import AlertmanagerSink, authorization
from monitor.notify.base import DeliveryFailed, Reason
from monitor.notify.kind import Destination, SinkContext
from monitor.rules.conditions import FiringCondition
from monitor.store import Store
from tests.leaks import assert_no_secret_leaks

AT = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
KEY = PositionKey("k1", "nse_fo", "53179", "")


def alert(kind: str, state: AlertState = AlertState.FIRING, key: PositionKey | None = KEY) -> Alert:
    symbol = None if key is None else "SYM"
    return Alert("r", kind, Severity.WARNING, "k1", key, symbol, AT, "m", {"x": 1}, state)


def test_labels_leave_out_what_the_alert_lacks_and_add_the_static_ones() -> None:
    """An empty product and an account-wide alert's position are no labels at all."""
    assert payload.alert_labels(alert("new_short"), {"team": "desk"}) == {
        "alertname": "r", "rule_kind": "new_short", "severity": "warning", "account": "k1",
        "exchange_segment": "nse_fo", "token": "53179", "symbol": "SYM", "team": "desk",
    }  # fmt: skip
    assert set(payload.alert_labels(alert("mtm_below", key=None), {})) == {
        "alertname", "rule_kind", "severity", "account",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "state", "ends"),
    [
        ("mtm_below", AlertState.FIRING, AT + 2 * HOUR + 4 * timedelta(minutes=1)),
        ("mtm_below", AlertState.RESOLVED, AT),
        ("new_short", AlertState.FIRING, AT + 2 * HOUR + HOUR),
    ],
)
def test_ends_count_from_the_post_for_firing_alerts_and_are_the_resolve_time_otherwise(
    kind: str, state: AlertState, ends: datetime
) -> None:
    """Posted two hours late: a firing condition and an event are still active."""
    posted = payload.postable(
        alert(kind, state), {}, now=AT + 2 * HOUR, horizon=timedelta(minutes=4),
        event_expiry=HOUR,
    )  # fmt: skip
    assert posted["startsAt"] == AT.isoformat()
    assert posted["endsAt"] == ends.isoformat()


def write(tmp_path: Path, entry: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules:\n  - {name: r, kind: new_short}\nnotify:\n  - kind: alertmanager\n" + entry
    )
    return path


def test_a_bad_entry_names_each_field_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "    url: nowhere\n"
        "    labels: {alertname: x, 0bad: y, team: 1}\n"
        "    bearer_token: s3cret-literal\n"
        '    basic_auth: {username: u, password: "${AM_PASSWORD}"}\n',
    )
    with pytest.raises(ConfigError) as raised:
        load(path)
    text = str(raised.value)
    for field in ("url:", "labels.alertname:", "labels.0bad:", "labels.team:", "bearer_token:"):
        assert f"notify 'alertmanager': {field}" in text
    assert "not both" in text
    assert_no_secret_leaks(["s3cret-literal"], text, raised.value)


def test_a_good_entry_reads_its_settings(tmp_path: Path) -> None:
    config = load(
        write(tmp_path, '    url: http://am:9093/\n    labels: {team: desk}\n'
              '    bearer_token: "${AM_TOKEN}"\n    resend_interval: 30s\n')
    )  # fmt: skip
    (sink,) = config.sinks
    settings = sink.settings
    assert isinstance(settings, AlertmanagerSettings)
    assert settings.url == "http://am:9093"
    assert settings.static_labels == {"team": "desk"}
    assert settings.horizon == timedelta(minutes=2)


@pytest.fixture
async def fake() -> AsyncIterator[tuple[str, list[web.Response]]]:
    """A fake Alertmanager answering with the responses queued by the test."""
    answers: list[web.Response] = []

    async def alerts(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer am-token-4242":
            return web.Response(status=418)
        return answers.pop(0)

    app = web.Application()
    app.router.add_post("/api/v2/alerts", alerts)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", answers
    await runner.cleanup()


@pytest.mark.parametrize(
    ("status", "headers", "reason", "retryable", "retry_after"),
    [
        (429, {"Retry-After": "7"}, Reason.RATE_LIMITED, True, 7.0),
        (503, {"Retry-After": "3"}, Reason.SERVER_ERROR, True, 3.0),
        (401, {}, Reason.AUTH_ERROR, True, None),
        (400, {}, Reason.CLIENT_ERROR, False, None),
    ],
)
async def test_each_answer_is_a_delivery_outcome_and_leaks_no_credential(
    fake: tuple[str, list[web.Response]],
    status: int,
    headers: dict[str, str],
    reason: Reason,
    retryable: bool,
    retry_after: float | None,
) -> None:
    url, answers = fake
    token = "am-token-4242"
    settings = AlertmanagerSettings(url, bearer_token="${AM_TOKEN}")
    sink = AlertmanagerSink(
        SinkConfig("am", "alertmanager"), settings,
        authorization=authorization(settings, {"bearer_token": token}),
        redact=lambda text: text.replace(token, "[redacted]"), firing=list,
        clock=lambda: AT, resend_failed=lambda: None,
    )  # fmt: skip
    answers.append(web.Response(status=status, headers=headers, text=f"refused {token}"))
    try:
        with pytest.raises(DeliveryFailed) as raised:
            await sink.send([alert("new_short")])
        answers.append(web.Response(status=200))
        await sink.send([alert("new_short")])  # and 2xx is delivered
    finally:
        await sink.close()
    failure = raised.value
    assert (failure.reason, failure.retryable, failure.retry_after) == (
        reason, retryable, retry_after,
    )  # fmt: skip
    assert f"HTTP {status}" in failure.detail
    assert_no_secret_leaks([token], failure, failure.detail)


class Firing:
    """A daemon with one condition firing, as the sinks see it."""

    def __init__(self, *conditions: FiringCondition) -> None:
        self.conditions = list(conditions)

    def statuses(self) -> Sequence[AccountStatus]:
        return []

    def snapshot(self, account: str) -> Snapshot | None:
        return None

    def rule_names(self) -> Sequence[str]:
        return [c.rule for c in self.conditions]

    def firing_conditions(self) -> Sequence[FiringCondition]:
        return self.conditions


async def test_failed_resend_rounds_count_on_the_sinks_series_which_starts_at_zero(
    fake: tuple[str, list[web.Response]], tmp_path: Path
) -> None:
    """Built by its kind as the daemon builds it: the series is exported before any round,
    each failed round adds one, a good round adds none, and only the first failure logs."""
    url, answers = fake
    registry = CollectorRegistry()
    settings = AlertmanagerSettings(url, bearer_token="${AM_TOKEN}")
    store = Store(tmp_path / "state.db")
    condition = FiringCondition("r", Severity.WARNING, "k1", KEY, "SYM", AT, "position_limit")
    context = SinkContext(
        redact=lambda text: text, zones={}, timezone=ZoneInfo("Asia/Kolkata"),
        view=Firing(condition), store=store, clock=lambda: AT, metrics=Metrics(registry),
    )  # fmt: skip
    destination = Destination(
        SinkConfig("am", "alertmanager", settings=settings), {"bearer_token": "am-token-4242"}
    )
    (sink,) = ALERTMANAGER.build([destination], context).sinks
    assert isinstance(sink, AlertmanagerSink)

    def failures() -> float | None:
        name = "position_monitor_alertmanager_resend_failures_total"
        return registry.get_sample_value(name, {"sink": "am"})

    assert failures() == 0
    try:
        with structlog.testing.capture_logs() as logs:
            answers += [web.Response(status=503), web.Response(status=503)]
            await sink.resend()
            await sink.resend()
            assert failures() == 2
            answers.append(web.Response(status=200))
            await sink.resend()
    finally:
        await sink.close()
        store.close()
    assert failures() == 2
    assert not answers  # the premise: every round reached Alertmanager
    events = [e["event"] for e in logs if e["event"].startswith("alertmanager_resend")]
    assert events == ["alertmanager_resend_failed", "alertmanager_resend_recovered"]


def test_an_unset_basic_auth_password_is_named_by_its_path_in_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "    url: http://am:9093\n"
        '    basic_auth: {username: "${AM_USER}", password: "${AM_PASSWORD}"}\n',
    )
    config = load(path)
    with pytest.raises(ConfigError) as raised:
        resolve_notify(config, {"AM_USER": "pm"})
    assert raised.value.problems == [
        f"{path}: notify 'alertmanager': basic_auth.password:"
        " environment variable AM_PASSWORD is not set"
    ]
    with pytest.raises(ConfigError) as raised:
        resolve_notify(config, {"AM_USER": "p\nm", "AM_PASSWORD": "pw"})
    assert raised.value.problems == [
        f"{path}: notify 'alertmanager': basic_auth.username:"
        " contains a control character (a line break?)"
    ]
    (destination,) = resolve_notify(config, {"AM_USER": "pm", "AM_PASSWORD": "pw"}).destinations
    assert destination.values == {"username": "pm", "password": "pw"}


def test_a_user_name_written_in_the_file_is_used_but_not_redacted(tmp_path: Path) -> None:
    """Only values from the environment are secrets: a literal user name (here the kind's own
    name, also the sink's) redacted from every log line would blank the sink's name, its event
    names and its host wherever they appear."""
    path = write(
        tmp_path,
        "    url: http://alertmanager:9093\n"
        '    basic_auth: {username: alertmanager, password: "${AM_PASSWORD}"}\n',
    )
    notify = resolve_notify(load(path), {"AM_PASSWORD": "pw-5e8a1f"})
    (destination,) = notify.destinations
    assert destination.values == {"username": "alertmanager", "password": "pw-5e8a1f"}
    assert notify.secrets == ("pw-5e8a1f",)
