"""The webhook sink against a local receiver, delivering from a real SQLite outbox."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from monitor import cli
from monitor.backoff import Backoff
from monitor.config import ConfigError, load, resolve_notify
from monitor.metrics import Metrics
from monitor.model import Alert
from monitor.notify.base import DeliveryFailed, Reason
from monitor.notify.outbox import Dispatcher
from monitor.notify.webhook.sink import SharedSession, WebhookSink, alert_id
from monitor.store import Store
from monitor.store_thread import StoreThread
from tests.fakes import serve
from tests.leaks import assert_no_secret_leaks
from tests.telegram.conftest import AT, commit, short

SECRET = "whsec-3f9a1c7e5b2d4a60"
FAST = Backoff(initial=0.05, cap=0.2)
TIMEOUT = aiohttp.ClientTimeout(total=2)


def verify(secret: str, headers: dict[str, str], body: bytes, now: float) -> bool:
    """A receiver's check, as README "Webhook" shows it: fresh timestamp, constant-time compare."""
    timestamp = headers.get("X-Position-Monitor-Timestamp", "")
    given = headers.get("X-Position-Monitor-Signature", "")
    if not timestamp.isdigit() or abs(now - int(timestamp)) > 300:
        return False
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(given, "sha256=" + mac.hexdigest())


@dataclass
class Receiver:
    """What the receiver was sent, and the answers it gives in turn (then 200)."""

    answers: list[web.StreamResponse | float] = field(default_factory=list)
    requests: list[tuple[float, dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    def bodies(self) -> list[dict[str, object]]:
        return [json.loads(body) for _, _, body in self.requests]

    def delivered_ids(self) -> list[str]:
        return [str(a["id"]) for b in self.bodies() for a in b["alerts"]]  # type: ignore[attr-defined]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()

    async def hook(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        state.requests.append((asyncio.get_running_loop().time(), dict(request.headers), body))
        answer = state.answers.pop(0) if state.answers else web.Response(status=200)
        if isinstance(answer, float):  # slower than the sink's timeout
            await asyncio.sleep(answer)
            return web.Response(status=200)
        return answer

    app = web.Application()
    app.router.add_post("/hook/{token}", hook)
    async with serve(app) as base:
        state.url = f"{base}/hook/path-token"
        yield state


@pytest.fixture
async def session() -> AsyncIterator[SharedSession]:
    shared = SharedSession()
    yield shared
    await shared.close()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "state.db")


def webhook(receiver: Receiver, session: SharedSession, secret: str | None = SECRET) -> WebhookSink:
    return WebhookSink("hook", receiver.url, secret, session, TIMEOUT)


async def until(condition: Callable[[], bool], seconds: float = 60) -> None:
    async with asyncio.timeout(seconds):  # generous: a busy machine is slow, not wrong
        while not condition():
            await asyncio.sleep(0.02)


async def running(d: Dispatcher, body: Callable[[], Awaitable[None]]) -> None:
    task = asyncio.create_task(d.run())
    try:
        await body()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def dispatcher(store: Store, sink: WebhookSink) -> tuple[Dispatcher, Metrics]:
    metrics = Metrics(CollectorRegistry())
    return Dispatcher(StoreThread(store), [sink], metrics, backoff=FAST), metrics


def deliveries(path: Path) -> list[tuple[str | None, str | None, str | None]]:
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT delivered_at, failed_at, last_error FROM deliveries ORDER BY alert_id"
        ).fetchall()


async def test_a_poll_is_one_signed_post_that_verifies(
    receiver: Receiver, session: SharedSession, store: Store
) -> None:
    """Two alerts of one poll: one POST, version 1, each alert with its id; the signature
    verifies with the receiver's own check over the bytes received."""
    alerts = [short("A"), short("B")]
    commit(store, alerts, ["hook"])
    d, _ = dispatcher(store, webhook(receiver, session))
    await d.flush()
    ((_, headers, body),) = receiver.requests
    assert verify(SECRET, headers, body, time.time())
    assert not verify("another-secret", headers, body, time.time())
    assert not verify(SECRET, headers, body + b" ", time.time())
    assert headers["Content-Type"] == "application/json"
    sent = json.loads(body)
    assert sent["version"] == "1"
    assert [a["id"] for a in sent["alerts"]] == [alert_id(a) for a in alerts]
    assert [{k: v for k, v in a.items() if k != "id"} for a in sent["alerts"]] == [
        a.to_json() for a in alerts
    ]
    assert store.outbox_depth() == {}


async def test_without_a_secret_no_signature_is_sent(
    receiver: Receiver, session: SharedSession
) -> None:
    await webhook(receiver, session, secret=None).send([short("A")])
    ((_, headers, _),) = receiver.requests
    assert "X-Position-Monitor-Signature" not in headers
    assert "X-Position-Monitor-Timestamp" not in headers


async def test_a_503_then_200_delivers_later_with_the_same_ids(
    receiver: Receiver, session: SharedSession, store: Store
) -> None:
    """Refused with 503 twice, then accepted: the alert arrives, each attempt with one id."""
    receiver.answers += [web.Response(status=503), web.Response(status=503)]
    commit(store, [short("A")], ["hook"])
    d, metrics = dispatcher(store, webhook(receiver, session))
    await running(d, lambda: until(lambda: store.outbox_depth() == {}))
    assert len(receiver.requests) == 3
    ids = receiver.delivered_ids()
    assert len(set(ids)) == 1 and len(ids) == 3
    for _, headers, body in receiver.requests:
        assert verify(SECRET, headers, body, time.time())
    failed = metrics.registry.get_sample_value(
        "position_monitor_notifications_total", {"sink": "hook", "result": "server_error"}
    )
    assert failed == 2
    ((delivered_at, failed_at, _),) = deliveries(Path(store.path))
    assert delivered_at is not None and failed_at is None


async def test_retry_after_is_waited_out(
    receiver: Receiver, session: SharedSession, store: Store
) -> None:
    """429 with Retry-After: 2 and a backoff of at most 0.2 s: only the receiver's ask explains
    a next attempt two seconds later or more. Lower bounds only: a busy machine is slower."""
    receiver.answers.append(web.Response(status=429, headers={"Retry-After": "2"}))
    commit(store, [short("A")], ["hook"])
    d, _ = dispatcher(store, webhook(receiver, session))
    await running(d, lambda: until(lambda: store.outbox_depth() == {}))
    first, second = (at for at, _, _ in receiver.requests)
    assert second - first >= 2.0


@pytest.mark.parametrize(
    ("header", "wait"),
    [("7", 7.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("99999", 3600.0), ("soon", None)],
)
async def test_retry_after_seconds_or_date_rides_on_the_failure(
    receiver: Receiver, session: SharedSession, header: str, wait: float | None
) -> None:
    """Seconds, an HTTP date (here long past), a wait capped at an hour, and nonsense."""
    receiver.answers.append(web.Response(status=429, headers={"Retry-After": header}))
    with pytest.raises(DeliveryFailed) as caught:
        await webhook(receiver, session).send([short("A")])
    assert caught.value.reason is Reason.RATE_LIMITED and caught.value.retryable
    assert caught.value.retry_after == wait


async def test_a_400_parks_the_alert_with_its_reason_and_the_lane_moves_on(
    receiver: Receiver, session: SharedSession, store: Store
) -> None:
    receiver.answers.append(web.Response(status=400, text="bad alert"))
    commit(store, [short("A")], ["hook"])
    commit(store, [short("B", AT + timedelta(seconds=5))], ["hook"])
    d, metrics = dispatcher(store, webhook(receiver, session))
    with structlog.testing.capture_logs() as logs:
        await d.flush()
    (first, second) = deliveries(Path(store.path))
    assert first[0] is None and first[1] is not None
    host = receiver.url.split("/")[2]
    assert first[2] == f"client_error: {host}: HTTP 400"
    assert second[0] is not None
    refused = [e for e in logs if e["event"] == "delivery_refused"]
    assert len(refused) == 1 and "HTTP 400" in refused[0]["reason"]
    parked = metrics.registry.get_sample_value(
        "position_monitor_undeliverable_alerts_total", {"sink": "hook"}
    )
    assert parked == 1
    assert "path-token" not in str(deliveries(Path(store.path))) + repr(logs)


async def test_a_timeout_is_retried(
    receiver: Receiver, session: SharedSession, store: Store
) -> None:
    """An answer slower than the timeout: a transport error, retried, delivered once after."""
    receiver.answers.append(5.0)
    commit(store, [short("A")], ["hook"])
    sink = WebhookSink("hook", receiver.url, SECRET, session, aiohttp.ClientTimeout(total=0.5))
    d, metrics = dispatcher(store, sink)
    await running(d, lambda: until(lambda: store.outbox_depth() == {}))
    timeouts = metrics.registry.get_sample_value(
        "position_monitor_notifications_total", {"sink": "hook", "result": "transport_error"}
    )
    assert timeouts == 1
    assert len(set(receiver.delivered_ids())) == 1


async def test_nothing_listening_is_retryable(session: SharedSession) -> None:
    sink = WebhookSink("hook", "http://127.0.0.1:9/hook", SECRET, session, TIMEOUT)
    with pytest.raises(DeliveryFailed) as caught:
        await sink.send([short("A")])
    assert caught.value.reason is Reason.TRANSPORT_ERROR and caught.value.retryable
    assert_no_secret_leaks([SECRET], caught.value)


def test_an_id_is_stable_across_the_outbox_and_distinct_per_alert() -> None:
    """The id a redelivery carries is the one the first delivery did (an alert read back from
    the outbox is the same alert); alerts differing in anything have different ids."""
    alert = short("A")
    assert alert_id(Alert.from_json(json.loads(json.dumps(alert.to_json())))) == alert_id(alert)
    others = [short("B"), short("A", AT + timedelta(seconds=1)), short("A", account="kotak-2")]
    assert len({alert_id(a) for a in [alert, *others]}) == 4


async def test_the_secret_reaches_no_output(
    receiver: Receiver, session: SharedSession, store: Store, tmp_path: Path
) -> None:
    """Signed deliveries, a refusal and a retry: the secret is in no body, log, record or
    metric."""
    receiver.answers += [web.Response(status=503), web.Response(status=401)]
    commit(store, [short("A")], ["hook"])
    commit(store, [short("B", AT + timedelta(seconds=5))], ["hook"])
    d, metrics = dispatcher(store, webhook(receiver, session))
    with structlog.testing.capture_logs() as logs:
        await running(d, lambda: until(lambda: store.outbox_depth() == {}))
    store.close()
    assert_no_secret_leaks(
        [SECRET],
        *(body for _, _, body in receiver.requests),
        repr(logs),
        (tmp_path / "state.db").read_bytes(),
        generate_latest(metrics.registry),
    )


RULES = "rules: [{name: r, kind: new_short}]\nnotify:\n"


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (
            "  - {kind: webhook, url: ftp://desk/hook}\n",
            "notify 'webhook': url: required: an http(s) URL without query or fragment;"
            " got 'ftp://desk/hook' (line 3)",
        ),
        (
            "  - {kind: webhook}\n",
            "notify 'webhook': url: required: an http(s) URL without query or fragment (line 3)",
        ),
        (
            f"  - {{kind: webhook, url: 'http://desk/hook', secret: {SECRET}}}\n",
            "notify 'webhook': secret: must be an environment reference such as"
            ' "${WEBHOOK_SECRET}" (line 3)',
        ),
        (
            "  - {kind: webhook, url: 'http://desk/hook', colour: red}\n",
            "notify 'webhook': colour: unknown field (line 3)",
        ),
        (
            "  - {kind: webhook, url: 'http://desk/hook', timeout: 10m}\n",
            "notify 'webhook': timeout: ",
        ),
    ],
    ids=["scheme", "missing-url", "literal-secret", "unknown-field", "timeout"],
)
def test_check_names_the_field_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], entry: str, problem: str
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES + entry, encoding="utf-8")
    assert cli.main(["check", str(path)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"{path}: {problem}")
    assert_no_secret_leaks([SECRET], line)


def test_the_secret_comes_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        RULES + "  - {kind: webhook, name: desk, url: 'https://desk/hook', secret: '${WH}'}\n",
        encoding="utf-8",
    )
    config = load(path)
    notify = resolve_notify(config, {"WH": SECRET})
    ((destination,),) = [notify.destinations]
    assert destination.values == {"secret": SECRET}
    assert notify.secrets == (SECRET,)
    with pytest.raises(ConfigError) as caught:
        resolve_notify(config, {})
    assert caught.value.problems == [
        f"{path}: notify 'desk': secret: environment variable WH is not set"
    ]
