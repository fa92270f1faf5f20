"""What the fault-injection tests share: the known secrets, rules files, fake servers that can
be stopped and cut mid-body, the daemon as a subprocess, and outside views of it (its alerts,
JSON logs, metrics and a read-only look at its SQLite file).

Waiting is asynchronous on purpose: the fakes answer on the test's own event loop, so a test
that blocked it would stall the broker the daemon is polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import socket
import sqlite3
import struct
import subprocess
import sys
import termios
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from tests.daemon_process import DaemonProcess

# Every credential the suite hands to a daemon, by environment variable. The leak check greps
# every log line, every alert and every file a test leaves for each value.
SECRETS: Mapping[str, str] = {
    "PM_REL_PORTFOLIO_TOKEN": "rel-portfolio-token-3f9c1a7e5d",
    "PM_REL_SAMCO_API_KEY": "rel-samco-key-8b2d4f6a0c",
    "PM_REL_SAMCO_API_SECRET": "rel-samco-secret-1e3c5a7b9d",
    "PM_REL_KOTAK_ACCESS_TOKEN": "rel-kotak-access-6d8f0b2c4e",
    "PM_REL_KOTAK_MOBILE": "+919812345670",
    "PM_REL_KOTAK_UCC": "RELUCC7",
    "PM_REL_KOTAK_MPIN": "582931",
    "PM_REL_KOTAK_TOTP": "KRUGKIDROVUWG2ZAMJZG653OEBTG66BA",
}
PORTFOLIO_TOKEN = SECRETS["PM_REL_PORTFOLIO_TOKEN"]

RULES: list[dict[str, object]] = [
    {"name": "fresh-short", "kind": "new_short"},
    {"name": "closed", "kind": "squared_off"},
]


def noon_zone(now: datetime | None = None) -> str:
    """An IANA zone whose local time is near noon now: no trading day ends during a test."""
    hour = (now or datetime.now(UTC)).hour
    offset = (12 - hour + 12) % 24 - 12  # UTC offset in hours, -12..11
    # Etc/GMT names have the sign inverted: Etc/GMT-5 is UTC+5.
    return "Etc/UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"


def portfolio_account(base: str, ident: str = "p1", **fields: object) -> dict[str, object]:
    """A portfolio account polled every 500 ms around the clock."""
    return {
        "id": ident, "broker": "portfolio", "base_url": base, "poll_every": "500ms",
        "window": "always", "credentials": {"token": "${PM_REL_PORTFOLIO_TOKEN}"}, **fields,
    }  # fmt: skip


def samco_account(base: str, ident: str = "s1", **fields: object) -> dict[str, object]:
    """A samco account (session tokens from the API key pair)."""
    credentials = {"api_key": "${PM_REL_SAMCO_API_KEY}", "api_secret": "${PM_REL_SAMCO_API_SECRET}"}
    return {
        "id": ident, "broker": "samco", "base_url": base, "poll_every": "500ms",
        "window": "always", "credentials": credentials, **fields,
    }  # fmt: skip


def kotak_account(base: str, ident: str = "k1", **fields: object) -> dict[str, object]:
    """A Kotak Neo account (TOTP + MPIN login, trade sessions)."""
    credentials = {
        "access_token": "${PM_REL_KOTAK_ACCESS_TOKEN}", "mobile_number": "${PM_REL_KOTAK_MOBILE}",
        "ucc": "${PM_REL_KOTAK_UCC}", "mpin": "${PM_REL_KOTAK_MPIN}",
        "totp_secret": "${PM_REL_KOTAK_TOTP}",
    }  # fmt: skip
    return {
        "id": ident, "broker": "kotak_neo", "base_url": base, "poll_every": "500ms",
        "window": "always", "credentials": credentials, **fields,
    }  # fmt: skip


def rules_document(
    accounts: Sequence[Mapping[str, object]], rules: Sequence[Mapping[str, object]] = RULES
) -> dict[str, object]:
    """A rules.yaml document: JSON console output, a zone near noon."""
    return {
        "timezone": noon_zone(),
        "accounts": list(accounts),
        "rules": list(rules),
        "notify": [{"kind": "console", "format": "json"}],
    }


def write_rules(path: Path, document: Mapping[str, object]) -> Path:
    """Write ``document`` as YAML to ``path``."""
    path.write_text(yaml.safe_dump(dict(document), sort_keys=False))
    return path


def pf_row(tok: str, ts: str, net: str, pnl: str, es: str = "nse_cm") -> dict[str, str]:
    """A portfolio positions row in the seed's shape."""
    return {
        "tok": tok, "dname": ts, "pos": "S" if net.startswith("-") else "L", "netQty": net,
        "avgPrice": "100.00", "ltp": "100.00", "pnl": pnl, "pnlPerc": "0.00", "chg": "0.00",
        "chgPerc": "0.00", "es": es, "ts": ts,
    }  # fmt: skip


async def until(
    predicate: Callable[[], Any], what: str, seconds: float = 60.0, daemon: Daemon | None = None
) -> Any:
    """Wait, without blocking the fakes, until ``predicate()`` is truthy; return its value."""
    deadline = time.monotonic() + seconds
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            logs = "\n".join(daemon.log_lines[-40:]) if daemon is not None else ""
            raise AssertionError(f"timed out after {seconds:g}s waiting for {what}\n{logs}")
        await asyncio.sleep(0.02)


class Daemon(DaemonProcess):
    """The daemon subprocess with asynchronous waits and outside views."""

    port_number: int | None = None
    # Called on the reader threads with (stream, line) as each line arrives; True: SIGKILL at
    # once, from that thread, to land a kill within a fraction of a millisecond of the line.
    kill_on: Callable[[str, str], bool] | None = None

    def _pump(self, stream: Any, sink: list[str], name: str) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))
            hook = self.kill_on
            if hook is not None and self.process is not None and hook(name, line):
                self.kill_on = None
                self.process.kill()
            self._events.put((name, line))

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """JSON log events, all or those named ``name``."""
        return [e for e in self.logs() if name is None or e.get("event") == name]

    async def started(self, seconds: float = 60.0) -> int:
        """Wait for ``daemon_started``; return the metrics port."""
        event = await until(
            lambda: self.events("daemon_started") or self.exited(), "daemon_started", seconds,
            self,
        )  # fmt: skip
        assert isinstance(event, list), f"the daemon exited {self.process.returncode}"  # type: ignore[union-attr]
        self.port_number = int(event[0]["listen"].rsplit(":", 1)[1])
        return self.port_number

    def exited(self) -> bool:
        """True once the process has ended."""
        return self.process is not None and self.process.poll() is not None

    async def wait_event(self, name: str, count: int = 1, seconds: float = 60.0) -> dict[str, Any]:
        """Wait for the ``count``-th log event named ``name``; return it."""
        found = await until(
            lambda: len(self.events(name)) >= count and self.events(name), name, seconds, self
        )
        return found[count - 1]  # type: ignore[no-any-return]

    async def wait_alerts(self, count: int, seconds: float = 60.0) -> list[dict[str, Any]]:
        """Wait until ``count`` alerts were printed; return them all."""
        await until(lambda: len(self.alerts()) >= count, f"{count} alerts", seconds, self)
        return self.alerts()

    async def metrics(self) -> str:
        """One scrape of /metrics."""
        assert self.port_number is not None, "await started() first"
        url = f"http://127.0.0.1:{self.port_number}/metrics"
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.get(url) as response,
        ):
            return await response.text()

    async def sample(self, name: str, **labels: str) -> float:
        """One sample of the current metrics; 0 when the series does not exist."""
        return sample(await self.metrics(), name, labels)

    async def wait_sample(
        self, name: str, at_least: float, seconds: float = 60.0, **labels: str
    ) -> float:
        """Wait until a metric sample reaches ``at_least``."""
        value = 0.0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            value = await self.sample(name, **labels)
            if value >= at_least:
                return value
            await asyncio.sleep(0.05)
        tail = "\n".join(self.log_lines[-40:])
        raise AssertionError(f"{name}{labels} stayed at {value}, wanted {at_least}\n{tail}")

    async def exit_code(self, seconds: float = 60.0) -> int:
        """Wait for the process to end by itself; its exit status, once every line it wrote
        has been read."""
        await until(self.exited, "the daemon to exit", seconds, self)
        assert self.process is not None
        await asyncio.to_thread(self.read_to_the_end)
        return self.process.returncode

    async def sigterm(self, seconds: float = 60.0) -> int:
        """SIGTERM; the exit status once the daemon is gone."""
        assert self.process is not None
        self.process.terminate()
        return await self.exit_code(seconds)


def sample(text: str, name: str, labels: Mapping[str, str]) -> float:
    """One sample from a Prometheus exposition; 0 when absent."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


def histogram_within(text: str, name: str, bound: str, **labels: str) -> tuple[float, float]:
    """(observations at or under ``bound``, all observations) of a histogram."""
    inside = sample(text, f"{name}_bucket", {**labels, "le": bound})
    return inside, sample(text, f"{name}_count", labels)


def query(state: Path, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
    """Rows from the state file, opened read-only as an outside observer would."""
    db = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def stored_alerts(state: Path) -> list[dict[str, Any]]:
    """Every alert committed in the state file, oldest first."""
    return [json.loads(p) for (p,) in query(state, "SELECT payload FROM alerts ORDER BY id")]


def pending_deliveries(state: Path) -> int:
    """Deliveries still in the outbox."""
    sql = "SELECT count(*) FROM deliveries WHERE delivered_at IS NULL AND failed_at IS NULL"
    return int(query(state, sql)[0][0])


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSON Lines file (a ``--record`` file)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def kinds(alerts: Iterable[Mapping[str, Any]]) -> list[tuple[str, str | None]]:
    """(rule, symbol) of each alert, in order."""
    return [(a["rule"], a["symbol"]) for a in alerts]


def replay_alerts(replay_file: Path, rules: Path) -> list[dict[str, Any]]:
    """``position-monitor replay --output jsonl``: the alerts a recorded session must raise."""
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "replay", str(replay_file), "--rules", str(rules),
         "--output", "jsonl"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


class FakeServer:
    """A fake's app on 127.0.0.1 that can go away and come back on the same port.

    While stopped nothing listens on the port, so the daemon's connections are refused, as
    when a broker's gateway is down. ``cut_next`` makes the next positions answers stop
    half-way through the body with a TCP reset.
    """

    def __init__(self, make_app: Callable[[], web.Application]) -> None:
        self._make_app = make_app
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.cuts: deque[str] = deque()

    @property
    def base(self) -> str:
        """The base URL, stable across restarts."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """True while listening."""
        return self._runner is not None

    async def start(self) -> str:
        """Listen (on the same port as before, if started before); the base URL."""
        app = self._make_app()
        app.middlewares.append(self._cut)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self.base

    async def stop(self) -> None:
        """Close the listener and every connection: new connections are refused."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def cut_next(self, times: int = 1) -> None:
        """The next ``times`` answers are reset after half of their body."""
        self.cuts.extend(["cut"] * times)

    @web.middleware
    async def _cut(self, request: web.Request, handler: Any) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        transport = request.transport
        if (
            not self.cuts
            or not isinstance(response, web.Response)
            or response.body is None
            or transport is None
            or transport.is_closing()  # a slow answer the client gave up on: not this cut's
        ):
            return response
        self.cuts.popleft()
        body = bytes(response.body)  # type: ignore[arg-type]
        stream = web.StreamResponse(
            status=response.status,
            headers={"Content-Type": response.content_type, "Content-Length": str(len(body))},
        )
        await stream.prepare(request)
        await stream.write(body[: len(body) // 2])
        sock = transport.get_extra_info("socket")
        # The half body is in the client's kernel before the reset: what it holds survives the
        # RST, while the reset discards what this side has not yet had acknowledged.
        while transport.get_write_buffer_size() or unacknowledged(sock):
            await asyncio.sleep(0.01)
        # Linger 0: close() sends RST instead of FIN, as a crashing proxy or a cut cable does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        return stream


def unacknowledged(sock: Any) -> int:
    """Bytes a TCP socket sent that its peer has not yet acknowledged (Linux SIOCOUTQ)."""
    queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
    return int(struct.unpack("i", queued)[0])


@contextlib.contextmanager
def held_write_lock(state: Path) -> Any:
    """Another process's write transaction on the state file (as a backup tool or an
    operator's sqlite3 shell holds it) for as long as the block runs."""
    db = sqlite3.connect(state, timeout=10, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        yield db
        db.execute("ROLLBACK")
    finally:
        db.close()


class Harness:
    """Starts daemons for one test and remembers them for the leak check and the cleanup."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.daemons: list[Daemon] = []
        self.watched: set[str] = set(SECRETS.values())
        self.directories: list[Path] = [tmp_path]  # every file in them is grepped afterwards

    def rules(
        self, accounts: Sequence[Mapping[str, object]], name: str = "rules.yaml", **document: object
    ) -> Path:
        """A rules.yaml for ``accounts`` in the test's directory."""
        return write_rules(self.tmp / name, {**rules_document(accounts), **document})

    def daemon(
        self,
        config: Path,
        state: Path | None = None,
        *extra: str,
        env: Mapping[str, str] | None = None,
        user: int | None = None,
    ) -> Daemon:
        """Start ``position-monitor run`` with the suite's credentials in its environment."""
        daemon = Daemon(
            config, state or self.tmp / "state.db", *extra, env={**SECRETS, **(env or {})},
            user=user,
        )  # fmt: skip
        self.daemons.append(daemon)
        return daemon.start()  # type: ignore[return-value]

    def also_check(self, directory: Path) -> None:
        """Grep the files in ``directory`` too (state kept outside the test's tmp_path)."""
        self.directories.append(directory)

    def watch(self, *values: str) -> None:
        """More values that must never be logged: session tokens a fake issued."""
        self.watched.update(v for v in values if v)
