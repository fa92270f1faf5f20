"""How many accounts one core keeps on time: the daemon polling 5,000 Kotak accounts every 5 s.

The daemon (``python -m monitor run`` on a generated rules.yaml with the bundled rules) runs
pinned to core 0 (``taskset -c 0``); the fake Kotak server (``tests.fakes.kotak_neo``, rate
limit off) runs in a process of its own pinned to core 1, so the broker's side costs the
daemon nothing. After the warm rounds (logins, first connections, baselines, and the longest
``for`` of the bundled rules, so no condition fires in the measured rounds) the
daemon's own ``position_monitor_poll_lag_seconds`` histogram (from each poll's due time to its
start) and its CPU time are read, and again ``ROUNDS`` intervals later. The figures: the p99
lag over the interval (the histogram's bucket bound at the 99th percentile, so an upper bound),
and the share of its core the daemon used. Positions and prices stay the same, as in the
fan-out figure: the steady state of accounts that did not trade.

``python -m benchmarks.scale --serve`` is the fake's process: it prints its base URL and
serves until its standard input closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from benchmarks import fanout
from tests.fakes import serve
from tests.fakes.kotak_neo import make_app

ACCOUNTS = 5_000
INTERVAL = 5.0  # seconds between two polls of one account
WARM_ROUNDS = 4  # logins and baselines; then the longest `for` of the bundled rules runs out
ROUNDS = 4
TIMEOUT = 300.0  # seconds the whole measurement may take
LAG = "position_monitor_poll_lag_seconds"


@dataclass(frozen=True, slots=True)
class Reading:
    """What the daemon's /metrics and /proc say at one moment."""

    at: float  # monotonic seconds
    cpu_seconds: float
    buckets: dict[float, float]  # upper bound -> cumulative count
    outcomes: dict[str, float]  # poll outcome -> count

    def count(self, *outcomes: str) -> float:
        """Polls so far with any of ``outcomes``."""
        return sum(self.outcomes.get(outcome, 0.0) for outcome in outcomes)

    def failed(self) -> float:
        """Polls so far that failed (not ok, not skipped)."""
        return sum(self.outcomes.values()) - self.count("ok", "deferred", "skipped_busy")

    @property
    def polls(self) -> float:
        """Polls started so far."""
        return self.buckets[float("inf")]


def parse_metrics(text: str) -> tuple[dict[float, float], dict[str, float]]:
    """The lag histogram's cumulative buckets, and the polls so far by outcome."""
    buckets: dict[float, float] = {}
    outcomes: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(LAG + "_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float(bound)] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("position_monitor_polls_total{"):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            outcomes[outcome] = outcomes.get(outcome, 0.0) + float(line.rsplit(" ", 1)[1])
    return buckets, outcomes


def p99_bound(start: Reading, end: Reading) -> float:
    """The smallest bucket bound with 99% of the polls started in between at or below it."""
    total = end.polls - start.polls
    for bound in sorted(end.buckets):
        if end.buckets[bound] - start.buckets.get(bound, 0.0) >= 0.99 * total:
            return bound
    return float("inf")


async def _read(session: aiohttp.ClientSession, url: str, pid: int) -> Reading:
    async with session.get(url) as response:
        text = await response.text()
    buckets, outcomes = parse_metrics(text)
    return Reading(time.monotonic(), fanout.cpu_seconds(pid), buckets, outcomes)


def _pinned(core: int, command: list[str]) -> list[str]:
    """``command`` on one core, when taskset is there (a smoke run goes on without it)."""
    taskset = shutil.which("taskset")
    return [taskset, "-c", str(core), *command] if taskset else command


async def _listening(stderr: asyncio.StreamReader) -> str:
    """The daemon's /metrics URL, from its ``daemon_started`` log line."""
    while line := await stderr.readline():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "daemon_started":
            return f"http://{event['listen']}/metrics"
    raise RuntimeError("the daemon exited before it started")


async def _drain(stderr: asyncio.StreamReader) -> None:
    while await stderr.readline():
        pass


async def run(
    root: Path,
    accounts: int = ACCOUNTS,
    interval: float = INTERVAL,
    warm_rounds: int = WARM_ROUNDS,
    rounds: int = ROUNDS,
) -> dict[str, float]:
    """Start the fake on core 1 and the daemon on core 0; measure ``rounds`` rounds after
    ``warm_rounds`` and the longest ``for`` of the bundled rules."""
    warm_rounds = fanout.warm_rounds(root, interval, warm_rounds)
    env = {**os.environ, **fanout.ENV, "PYTHONPATH": str(root)}
    fake = await asyncio.create_subprocess_exec(
        *_pinned(1, [sys.executable, "-m", "benchmarks.scale", "--serve"]),
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    daemon: asyncio.subprocess.Process | None = None
    try:
        if fake.stdout is None:
            raise RuntimeError("the fake Kotak server has no pipe")
        base = (await fake.stdout.readline()).decode().strip()
        if not base:
            raise RuntimeError("the fake Kotak server did not start")
        with tempfile.TemporaryDirectory(prefix="pm-bench-") as tmp:
            rules = Path(tmp) / "rules.yaml"
            rules.write_text(fanout.rules_yaml(base, root, accounts, interval), encoding="utf-8")
            command = [
                sys.executable, "-m", "monitor", "run", "--config", str(rules),
                "--state", str(Path(tmp) / "state.db"), "--listen", "127.0.0.1:0",
            ]  # fmt: skip
            daemon = await asyncio.create_subprocess_exec(
                *_pinned(0, command), env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                limit=1 << 20,  # daemon_started names every account
            )  # fmt: skip
            if daemon.stderr is None:
                raise RuntimeError("the daemon has no pipe")
            async with asyncio.timeout(TIMEOUT):
                url = await _listening(daemon.stderr)
                draining = asyncio.create_task(_drain(daemon.stderr))
                start, end = await _measure(url, daemon.pid, interval, warm_rounds, rounds)
            draining.cancel()
    finally:
        for process in (daemon, fake):
            if process is not None and process.returncode is None:
                process.terminate()
                await process.wait()
    lag = p99_bound(start, end)
    return {
        "scale_lag_p99_over_interval": lag / interval,
        "scale_lag_p99_ms": lag * 1e3,
        "scale_cpu_share": (end.cpu_seconds - start.cpu_seconds) / (end.at - start.at),
        "scale_polls": end.polls - start.polls,
        "scale_failed_polls": end.failed() - start.failed(),
        # Not started: the previous poll still running, or a backoff after a failure.
        "scale_skipped_polls": end.count("skipped_busy", "deferred")
        - start.count("skipped_busy", "deferred"),
        "scale_accounts": accounts,
        "scale_interval_s": interval,
    }


async def _measure(
    url: str, pid: int, interval: float, warm_rounds: int, rounds: int
) -> tuple[Reading, Reading]:
    """Readings at the end of the warm rounds and after ``rounds`` more.

    The stretches are timed rather than watched: a scrape of 5,000 accounts' series costs
    the daemon a noticeable part of a second, so /metrics is read only at the two ends.
    """
    async with aiohttp.ClientSession() as session:
        await asyncio.sleep(warm_rounds * interval)
        start = await _read(session, url, pid)
        await asyncio.sleep(rounds * interval)
        end = await _read(session, url, pid)
    return start, end


async def _serve_fake() -> None:
    """Serve the fake Kotak server until standard input closes."""
    async with serve(make_app(fanout.fake_state())) as base:
        print(base, flush=True)
        await asyncio.to_thread(sys.stdin.read)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", action="store_true", help="be the fake Kotak server")
    if parser.parse_args().serve:
        asyncio.run(_serve_fake())
    else:
        print(json.dumps(asyncio.run(run(Path(__file__).resolve().parent.parent))))
