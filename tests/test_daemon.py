"""The real daemon as a subprocess: restart safety, graceful shutdown, metrics, refusals; and
in process, a reload asked for while it stops."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import time
import urllib.request
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor import config
from monitor.brokers.simulator import Simulator
from monitor.daemon import Daemon, Settings
from monitor.engine import Engine
from monitor.model import Alert, Severity
from monitor.store import Store, StoreError
from monitor.store_schema import StateFileRefused, claim_state_file
from tests.daemon_process import DaemonProcess

TZ = ZoneInfo("Asia/Kolkata")
POLL = timedelta(milliseconds=500)


def write_config(tmp_path: Path, bundled_rules: Path) -> Path:
    """The bundled rules with a fast simulator account and JSON console output."""
    text = bundled_rules.read_text()
    text = text.replace(
        "accounts: []",
        "accounts:\n  - id: sim\n    broker: simulator\n    poll_every: 500ms\n    seed: 3",
    )
    text = text.replace("format: text ", "format: json ")
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    assert "format: json" in text and "id: sim" in text
    return path


@pytest.fixture
def daemons() -> list[DaemonProcess]:
    """Daemons started by a test, killed if the test leaves them running."""
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:
        daemon.stop()


def alert_key(alert: dict[str, object]) -> tuple[object, ...]:
    """What makes an alert distinct: rule, position, poll time."""
    return (alert["rule"], alert["exchange_segment"], alert["token"], alert["product"], alert["at"])


def stored_alerts(state: Path) -> list[dict[str, object]]:
    """Every alert committed in a state file, oldest first."""
    with sqlite3.connect(state) as db:
        return [json.loads(p) for (p,) in db.execute("SELECT payload FROM alerts ORDER BY id")]


def test_kill9_restart_reports_downtime_changes_once_and_nothing_twice(
    tmp_path: Path, bundled_rules: Path, daemons: list[DaemonProcess]
) -> None:
    """kill -9 between polls, changes while down: reported once on restart, no repeats."""
    cfg = write_config(tmp_path, bundled_rules)
    state = tmp_path / "state.db"
    first = DaemonProcess(cfg, state).start()
    daemons.append(first)
    first.wait_for(lambda d: len(d.alerts()) >= 3, 60, "three alerts from the first run")
    # Kill right after a poll committed, so the kill falls between polls.
    seen = len(first.logs())
    first.wait_for(
        lambda d: any(e.get("event") == "alerts_raised" for e in d.logs()[seen:]), 60, "a poll"
    )
    first.kill9()
    snapshot_copy = tmp_path / "at-kill.db"
    with sqlite3.connect(state) as source, sqlite3.connect(snapshot_copy) as target:
        source.backup(target)
    before = stored_alerts(state)

    time.sleep(3)  # the simulated market trades on while the daemon is down

    second = DaemonProcess(cfg, state).start()
    daemons.append(second)
    opened = second.wait_for_log("simulator_opened")
    resumed = second.wait_for_log("poll_resumed")
    second.wait_for(lambda d: len(d.alerts()) >= 1, 60, "an alert from the second run")
    assert second.terminate() == 0
    after = stored_alerts(state)

    # What the first poll after the restart must report: the same engine over the state at
    # the kill, fed the market the restarted daemon opened (the simulator's day starts with the
    # daemon), at the instant it polled.
    rules = config.load(cfg)
    taken_at = datetime.fromisoformat(resumed["taken_at"])
    started = datetime.fromisoformat(opened["opens_at"])
    market = Simulator("sim", seed=3, tick=POLL, timezone=TZ, started=started)
    replica = Store(snapshot_copy)
    engine = Engine(replica, rules.rules, rules.sinks)
    held = engine.last_snapshot("sim")
    expected = engine.ingest(market.snapshot_at(taken_at), TZ)
    replica.close()
    reported = [a for a in after[len(before) :] if a["at"] == resumed["taken_at"]]
    assert [a.to_json() for a in expected.alerts] == reported
    assert resumed["alerts"] == len(reported)
    assert held is not None and held.positions, "the first run left a book to resume from"
    assert resumed["changes"] > 0, "the restarted daemon's market differs from the book held"

    # Nothing fires twice: every committed alert is distinct, and the first run's alerts are
    # still the first rows (the restart re-raised none of them).
    assert after[: len(before)] == before
    assert max(Counter(alert_key(a) for a in after).values()) == 1
    # Every committed alert reached the console; only the one in flight at the kill may repeat.
    printed = Counter(alert_key(a) for a in first.alerts() + second.alerts())
    assert {alert_key(a) for a in after} <= set(printed)
    assert sum(n - 1 for n in printed.values()) <= 1


def test_sigterm_exits_zero_after_finishing_and_flushing(
    tmp_path: Path, bundled_rules: Path, daemons: list[DaemonProcess]
) -> None:
    """SIGTERM: exit status 0, outbox empty, shutdown logged."""
    cfg = write_config(tmp_path, bundled_rules)
    state = tmp_path / "state.db"
    daemon = DaemonProcess(cfg, state).start()
    daemons.append(daemon)
    daemon.wait_for(lambda d: len(d.alerts()) >= 1, 60, "an alert")
    assert daemon.terminate() == 0
    # The stopping message's outcome (tests/telegram/test_liveness.py) aside.
    events = [e["event"] for e in daemon.logs() if not e["event"].startswith("liveness_")]
    assert events[-2:] == ["daemon_stopping", "daemon_stopped"]
    with sqlite3.connect(state) as db:
        pending = db.execute(
            "SELECT count(*) FROM deliveries WHERE delivered_at IS NULL AND failed_at IS NULL"
        ).fetchone()[0]
    assert pending == 0
    assert len(daemon.alerts()) == len(stored_alerts(state))


def scrape(port: int, path: str = "/metrics") -> tuple[int, str]:
    """GET a path of the daemon's HTTP endpoint."""
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def sample(text: str, name: str, labels: dict[str, str]) -> float | None:
    """One sample value from a Prometheus text exposition."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def test_metrics_health_and_readiness_are_served(
    tmp_path: Path, bundled_rules: Path, daemons: list[DaemonProcess]
) -> None:
    """/metrics counts good polls and alerts, /healthz answers, /readyz turns ready."""
    cfg = write_config(tmp_path, bundled_rules)
    started = time.time()
    daemon = DaemonProcess(cfg, tmp_path / "state.db").start()
    daemons.append(daemon)
    port = daemon.port()
    daemon.wait_for(lambda d: len(d.alerts()) >= 1, 60, "an alert")
    _, first = scrape(port)
    polls = {"account": "sim", "outcome": "ok"}
    before = sample(first, "position_monitor_polls_total", polls)
    assert before is not None and before >= 1
    daemon.wait_for(
        lambda d: (sample(scrape(port)[1], "position_monitor_polls_total", polls) or 0) > before,
        60,
        "the poll counter to grow",
    )
    _, text = scrape(port)
    assert sample(text, "position_monitor_build_info", {}) == 1
    last_good = "position_monitor_last_successful_poll_timestamp_seconds"
    assert (sample(text, last_good, {"account": "sim"}) or 0) >= started
    deliveries = {"sink": "console", "result": "delivered"}
    delivered = sample(text, "position_monitor_notifications_total", deliveries)
    assert delivered is not None and delivered >= 1
    assert scrape(port, "/healthz") == (200, '{"status": "ok"}')
    status, body = scrape(port, "/readyz")
    assert status == 200
    assert json.loads(body) == {"ready": True, "accounts": 1, "stale_accounts": []}
    assert daemon.terminate() == 0


def test_a_second_daemon_on_the_same_state_file_is_refused(
    tmp_path: Path, bundled_rules: Path, daemons: list[DaemonProcess]
) -> None:
    """Two daemons on one state file would alert twice: the second exits 1 and says why."""
    cfg = write_config(tmp_path, bundled_rules)
    state = tmp_path / "state.db"
    first = DaemonProcess(cfg, state).start()
    daemons.append(first)
    first.wait_for_log("daemon_started")
    second = DaemonProcess(cfg, state).start()
    daemons.append(second)
    assert second.process is not None
    assert second.process.wait(timeout=60) == 1
    second.wait_for(lambda d: d.log_lines, 60, "stderr")
    assert second.log_lines[-1] == (
        f"position-monitor: state file {state}: in use by another running position-monitor"
    )
    assert first.terminate() == 0


def test_run_refuses_a_bad_config_without_touching_state(tmp_path: Path) -> None:
    """A bad rules.yaml: exit 2 with the file-named problem, no state file created."""
    cfg = tmp_path / "rules.yaml"
    cfg.write_text("rules:\n  - name: dd\n    kind: mtm_drawdown\n    threshold: -5\n")
    state = tmp_path / "state.db"
    daemon = DaemonProcess(cfg, state).start()
    assert daemon.process is not None
    assert daemon.process.wait(timeout=60) == 2
    daemon.wait_for(lambda d: d.log_lines, 60, "stderr")
    assert daemon.log_lines == [
        f"{cfg}: rule 'dd': threshold: must be a positive amount; got -5 (line 4)"
    ]
    assert not state.exists()


def test_run_refuses_an_unusable_state_file(tmp_path: Path, bundled_rules: Path) -> None:
    """A state path that is a directory: exit 1 naming the file, before any poll."""
    cfg = tmp_path / "rules.yaml"
    shutil.copy(bundled_rules, cfg)
    daemon = DaemonProcess(cfg, tmp_path).start()
    assert daemon.process is not None
    assert daemon.process.wait(timeout=60) == 1
    daemon.wait_for(lambda d: d.log_lines, 60, "stderr")
    assert daemon.log_lines[-1].startswith(f"position-monitor: state file {tmp_path}: ")


def test_run_refuses_credentials_missing_from_the_environment(
    tmp_path: Path, bundled_rules: Path
) -> None:
    """Credentials come from the environment only: an unset variable is named, exit 2."""
    cfg = tmp_path / "rules.yaml"
    references = "".join(
        f'      {name}: "${{PM_TEST_{name.upper()}}}"\n'
        for name in ("access_token", "mobile_number", "ucc", "mpin", "totp_secret")
    )
    cfg.write_text(
        bundled_rules.read_text().replace(
            "accounts: []",
            f"accounts:\n  - id: kotak-main\n    broker: kotak_neo\n    credentials:\n{references}",
        )
    )
    daemon = DaemonProcess(cfg, tmp_path / "state.db").start()
    assert daemon.process is not None
    assert daemon.process.wait(timeout=60) == 2
    daemon.wait_for(lambda d: len(d.log_lines) == 5, 60, "stderr")
    assert daemon.log_lines[0] == (
        f"{cfg}: account 'kotak-main': credentials.access_token: environment variable"
        " PM_TEST_ACCESS_TOKEN is not set (line 18)"
    )
    assert not (tmp_path / "state.db").exists()


def test_a_state_file_with_a_second_hard_link_is_refused(tmp_path: Path) -> None:
    """SQLite names its write-ahead log after the path it opened, so one state file under two
    names could lose commits: a file with two hard links is refused, a symlink is not."""
    state = tmp_path / "state.db"
    Store(state).close()
    symlink = tmp_path / "via-symlink.db"
    symlink.symlink_to(state)
    os.close(claim_state_file(symlink))
    (tmp_path / "second-name.db").hardlink_to(state)
    with pytest.raises(StateFileRefused, match=r"has 2 hard links; give it exactly one name"):
        claim_state_file(state)


async def test_a_reload_asked_for_while_stopping_is_answered_and_stop_ends(
    tmp_path: Path,
) -> None:
    """A SIGHUP or ``POST /-/reload`` that arrives while the daemon stops is refused at once:
    waiting for the reload lock that stop() holds for good, it would never be answered, and
    the HTTP request waiting on it would hold up the listener's cleanup for a minute."""
    path = tmp_path / "rules.yaml"
    path.write_text(
        "accounts: [{id: sim, broker: simulator, poll_every: 1s, seed: 3}]\n"
        "rules: [{name: fresh-short, kind: new_short}]\n"
        "daemon: {lifecycle: true}\n"
    )
    settings = Settings(tmp_path / "state.db", "127.0.0.1", 0)
    running = Daemon(config.load(path), settings)
    await running.start()
    stopping = asyncio.create_task(running.stop())
    while not running._reload_lock.locked():  # stop() has begun and holds the reload lock
        await asyncio.sleep(0)
    async with asyncio.timeout(30):  # generous: a busy machine is slow, not wrong
        problems = await running.reload()
        await stopping
    assert problems
    assert not running._reloads, "no reload task is left pending"


async def test_a_reload_stops_the_accounts_it_removes_side_by_side(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each removed account may wait out its poll in flight (bounded): all at once, so a reload
    that removes N accounts of a hung broker takes one drain, not N of them back to back, and
    a SIGTERM behind it does not wait N times as long."""

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # holds the connection open until the client goes

    broker = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = broker.sockets[0].getsockname()[1]
    monkeypatch.setenv("PM_HUNG_TOKEN", "tok-hung-1")
    accounts = "".join(
        f"  - {{id: {name}, broker: portfolio, poll_every: 1s, timeout: 60s,"
        f' base_url: "http://127.0.0.1:{port}", credentials: {{token: "${{PM_HUNG_TOKEN}}"}}}}\n'
        for name in ("a", "b")
    )
    path = tmp_path / "rules.yaml"
    path.write_text("accounts:\n" + accounts + "rules: [{name: fresh-short, kind: new_short}]\n")
    loaded = config.load(path)
    secrets = {a.id: config.resolve_credentials(loaded, a, os.environ) for a in loaded.accounts}
    running = Daemon(loaded, Settings(tmp_path / "state.db", "127.0.0.1", 0, secrets))
    await running.start()
    try:
        first, second = running.pollers.pollers
        async with asyncio.timeout(60):  # generous: a busy machine is slow, not wrong
            while first._task is None or second._task is None:  # both polls hang in flight
                await asyncio.sleep(0.01)
        path.write_text("rules: [{name: fresh-short, kind: new_short}]\n")  # both gone
        reloading = running.reload()
        while not (first.retired or second.retired):
            await asyncio.sleep(0)
        assert first.retired and second.retired, "one account waits on the other's drain"
        async with asyncio.timeout(60):
            assert await reloading == []
    finally:
        await running.stop()
        broker.close()


async def test_a_reload_lets_the_sinks_it_rebuilds_finish_their_sends_side_by_side(
    tmp_path: Path,
) -> None:
    """Each sink a reload removes or rebuilds may finish its send in flight (bounded): all at
    once, so N hung destinations cost the reload, and a SIGTERM behind it, one grace period
    rather than N of them back to back."""
    connected: list[int] = []
    both = asyncio.Event()

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.append(1)
        if len(connected) >= 2:
            both.set()
        await reader.read()  # holds the request unanswered until the client goes

    hook = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{hook.sockets[0].getsockname()[1]}/hook"
    path = tmp_path / "rules.yaml"

    def write(timeout: str) -> None:
        hooks = "".join(
            f"  - {{kind: webhook, name: {name}, url: '{url}', timeout: {timeout}}}\n"
            for name in ("one", "two")
        )
        path.write_text("rules: [{name: fresh-short, kind: new_short}]\nnotify:\n" + hooks)

    write("60s")
    running = Daemon(config.load(path), Settings(tmp_path / "state.db", "127.0.0.1", 0))
    await running.start()
    try:
        at = datetime.now(TZ)
        note = Alert("fresh-short", "new_short", Severity.WARNING, "sim", None, None, at, "m", {})
        await running.store.commit_alerts([(note, ["one", "two"])])
        running.dispatcher.wake()
        async with asyncio.timeout(60):  # generous: a busy machine is slow, not wrong
            await both.wait()  # both sends hang in flight
        write("59s")  # both destinations change: rebuilt
        reloading = running.reload()
        lanes = running.dispatcher._lanes
        while "one" in lanes and "two" in lanes:
            await asyncio.sleep(0)
        assert "one" not in lanes and "two" not in lanes, "one sink waits on the other's send"
        async with asyncio.timeout(60):
            assert await reloading == []
    finally:
        await running.stop()
        hook.close()


async def test_a_reload_whose_parking_fails_still_delivers_to_the_sinks_it_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parking a removed sink's outbox can fail (a locked state file): the reload fails, but
    the sinks it had already taken out for rebuilding are back, not left without a lane."""
    path = tmp_path / "rules.yaml"
    rules = "rules: [{name: fresh-short, kind: new_short}]\nnotify:\n"
    path.write_text(rules + "  - {kind: console, name: desk}\n  - {kind: console, name: old}\n")
    running = Daemon(config.load(path), Settings(tmp_path / "state.db", "127.0.0.1", 0))
    await running.start()
    try:
        path.write_text(rules + "  - {kind: console, name: desk, min_severity: warning}\n")

        async def locked(*args: object) -> int:
            raise StoreError("database is locked")

        monkeypatch.setattr(running.store, "park_sink", locked)
        assert await running.reload(), "the premise: the reload failed"
        assert [sink.name for sink in running.dispatcher.sinks] == ["desk"]
    finally:
        await running.stop()
