"""The state file on its own thread: another process's lock holds up a commit, never the loop."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import urllib.request
from pathlib import Path

from monitor import config
from monitor.daemon import Daemon, Settings
from monitor.store import Store
from monitor.store_thread import StoreThread
from tests.fakes import serve
from tests.fakes.portfolio import PortfolioState, make_app
from tests.test_live_daemon import committed
from tests.waiting import wait_until

TOKEN = "pf-token-5d1e9c3a7b"  # a fake server's token
LOCK_SECONDS = 6  # longer than SQLite's 5 s busy timeout
RESPONSE_BOUND = 0.5  # seconds: /metrics and /healthz answer within this while the file is locked

RULES = """\
accounts:
  - id: moving
    broker: portfolio
    base_url: {moving}
    poll_every: 500ms
    window: always
    credentials:
      token: "${{PM_TEST_PORTFOLIO_TOKEN}}"
  - id: steady
    broker: portfolio
    base_url: {steady}
    poll_every: 500ms
    window: always
    credentials:
      token: "${{PM_TEST_PORTFOLIO_TOKEN}}"
rules:
  - name: fresh-short
    kind: new_short
notify:
  - kind: console
    format: json
"""

# Another process takes the write lock of the state file, says so, holds it, lets it go.
LOCKER = """\
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
print("released", flush=True)
"""


def sample(text: str, name: str) -> float:
    """The value of the first series named ``name`` (with its labels) in an exposition."""
    for line in text.splitlines():
        if line.startswith(name):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


class Probe(threading.Thread):
    """Asks /metrics and /healthz in turn until stopped, timing each answer."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self._base = base
        self._stopped = threading.Event()
        self.timings: list[tuple[str, float]] = []
        self.waiting: list[float] = []  # the state calls waiting, per /metrics answer
        self.steady_polls: list[float] = []  # the steady account's good polls, likewise

    def run(self) -> None:
        while not self._stopped.is_set():
            for path in ("/metrics", "/healthz"):
                started = time.perf_counter()
                with urllib.request.urlopen(self._base + path, timeout=60) as response:  # noqa: S310 - a local URL
                    body = response.read().decode()
                self.timings.append((path, time.perf_counter() - started))
                if path == "/metrics":
                    self.waiting.append(sample(body, "position_monitor_state_calls_waiting"))
                    ok = 'position_monitor_polls_total{account="steady",outcome="ok"}'
                    self.steady_polls.append(sample(body, ok))
            self._stopped.wait(0.1)

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=60)


async def test_a_foreign_lock_holds_up_the_commit_but_never_the_loop(tmp_path: Path) -> None:
    """While another process holds the state file's write lock for 6 s, /metrics and /healthz
    answer within 500 ms, the steady account's polls go on, a commit waits; afterwards the
    held-up alert is in the file once, landed late or re-derived after a counted state error."""
    moving, steady = PortfolioState(token=TOKEN), PortfolioState(token=TOKEN)
    async with serve(make_app(moving)) as moving_base, serve(make_app(steady)) as steady_base:
        rules_path = tmp_path / "rules.yaml"
        rules_path.write_text(RULES.format(moving=moving_base, steady=steady_base))
        loaded = config.load(rules_path)
        state = tmp_path / "state.db"
        secrets = {"moving": {"token": TOKEN}, "steady": {"token": TOKEN}}
        settings = Settings(state, "127.0.0.1", 0, secrets)
        monitor = Daemon(loaded, settings)
        await monitor.start()
        locker: asyncio.subprocess.Process | None = None
        try:
            await wait_until(
                lambda: len(moving.requests) >= 2 and len(steady.requests) >= 2, "baselines"
            )
            locker = await asyncio.create_subprocess_exec(
                sys.executable, "-c", LOCKER, str(state), str(LOCK_SECONDS),
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            assert locker.stdout is not None
            assert await asyncio.wait_for(locker.stdout.readline(), 60) == b"locked\n"
            moving.rows[0]["netQty"] = "-10"  # RELIANCE turns short: a commit to make
            released = asyncio.create_task(locker.stdout.readline())
            # Asked from a thread of its own: a blocked loop would hold up the asking too.
            probe = Probe(f"http://127.0.0.1:{monitor.port}")
            probe.start()
            await released
            await asyncio.to_thread(probe.stop)  # its last answer needs the loop
            # Every request began after "locked" was read; all but the last ended before
            # "released" was.
            assert released.result() == b"released\n"
            assert len(probe.timings) >= 10, "requests were made while the lock was held"
            slow = [(p, round(t, 3)) for p, t in probe.timings if t > RESPONSE_BOUND]
            assert not slow, f"answers over {RESPONSE_BOUND}s while the file was locked: {slow}"
            assert max(probe.waiting) >= 1, "a commit was waiting on the lock"
            assert probe.steady_polls[-1] > probe.steady_polls[0], "the steady account polled"

            def short_committed() -> bool:
                return [a.rule for a in committed(state)] == ["fresh-short"]

            await wait_until(short_committed, "the held-up alert stored after the release")
        finally:
            if locker is not None and locker.returncode is None:
                locker.kill()
                await locker.wait()
            await monitor.stop()
    failures = monitor.registry.get_sample_value("position_monitor_state_write_failures_total")
    errors = monitor.registry.get_sample_value(
        "position_monitor_polls_total", {"account": "moving", "outcome": "state_error"}
    )
    assert (errors or 0) == failures, "a commit that gave up on the lock is a counted state error"
    assert [a.rule for a in committed(state)] == ["fresh-short"], "once, not lost, not twice"


async def test_calls_run_in_the_order_made_and_a_queued_call_is_dropped_when_cancelled(
    tmp_path: Path,
) -> None:
    """Two values set one after the other read back as the second; a call cancelled while it
    waits behind a running one never runs."""
    thread = StoreThread(Store(tmp_path / "state.db"))
    gate = asyncio.Event()
    loop = asyncio.get_running_loop()
    held = asyncio.create_task(thread._run(lambda: asyncio.run_coroutine_threadsafe(
        gate.wait(), loop).result()))  # fmt: skip
    queued = asyncio.create_task(thread.set_meta("k", "dropped"))
    await asyncio.sleep(0)
    queued.cancel()
    gate.set()
    await held
    assert await thread.get_meta("k") is None, "the cancelled call never ran"
    await thread.set_meta("k", "1")
    await thread.set_meta("k", "2")
    assert await thread.get_meta("k") == "2"
    assert queued.cancelled()
    assert await thread.close(60)
