"""Fault: ``kill -9`` of the daemon at random points, 100 times over one scripted session.

The fake broker plays a scripted session of position steps (shorts, flips, square-offs, a row
that comes and goes, MTM swings that trip and re-arm both drawdown rules). It moves to the next
step only once the state file shows the current one committed, so every step is seen by the
daemon however often it dies, and the session's alerts are exactly what ``position-monitor
replay`` prints for the same steps. Each run is killed at one of five points, each reached by
an event and not by a guess at how fast the machine is: during start-up (at a random moment,
at the latest on the ``daemon_started`` line), by the fake the moment a positions request
arrives, right after a poll was committed (on the line logged after each commit), right after
an alert line was printed, or while idle after the run's first committed poll.

Expected: the union of the alerts printed over all runs equals the replay's set; an alert
appears twice only as the last line before a kill and again as the first line after the
restart (the alert in flight); the state file holds each alert once and an empty outbox.

Four lanes (each its own fake, state file and daemon, all playing the same session) run side
by side, 25 kills each: a restart costs about half a second (start-up and the first poll's
random offset), so 100 of them in one lane would take most of the suite's two minutes. Each
lane must show the kills did their work: several landed after a commit of their run, and the
session advanced across them.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.fakes import portfolio, serve
from tests.reliability.harness import (
    PORTFOLIO_TOKEN,
    Daemon,
    Harness,
    noon_zone,
    pending_deliveries,
    pf_row,
    portfolio_account,
    query,
    replay_alerts,
    stored_alerts,
    until,
)

LANES = 4
KILLS_PER_LANE = 25
STEPS = 10
SCRIPT_SEED = 7  # 23 alerts of all four rules, two drawdown re-arms, rows removed
SEED = 20261123  # the kill points
RULES: list[dict[str, object]] = [
    {"name": "fresh-short", "kind": "new_short"},
    {"name": "closed", "kind": "squared_off"},
    {"name": "desk-drawdown", "kind": "mtm_drawdown", "threshold": 4000, "severity": "critical"},
    {"name": "pos-drawdown", "kind": "mtm_drawdown", "scope": "position", "threshold": 2500},
]
KEYS = (
    ("nse_cm", "11536", "RELIANCE-EQ"),
    ("nse_cm", "1594", "INFY-EQ"),
    ("nse_cm", "3045", "SBIN-EQ"),
    ("nse_fo", "35001", "NIFTY26DECFUT"),
    ("nse_fo", "35002", "BANKNIFTY26DECFUT"),
)
KILL_POINTS = ("start-up", "mid-fetch", "after-commit", "mid-delivery", "idle")
# Logged by a run right after it committed a poll (its first good poll logs one of the first two).
COMMITTED = ("baseline_taken", "poll_resumed", "alerts_raised")
# How long a run may take to reach its kill point: generous, for a busy machine.
DEADLINE = 90.0

Rows = list[dict[str, str]]


def make_script(steps: int, seed: int) -> list[Rows]:
    """Position steps: quantities jump now and then, P&L moves every step (so every step is a
    different stored state), and the future's row comes and goes."""
    rng = random.Random(seed)
    net = dict.fromkeys(KEYS, 10)
    pnl = dict.fromkeys(KEYS, 0)
    present = dict.fromkeys(KEYS, True)
    script = []
    for step in range(steps):
        for key in KEYS:
            if step and rng.random() < 0.5:
                net[key] = rng.choice([-20, -10, 0, 10, 20])
            if step and key[0] == "nse_fo" and rng.random() < 0.2:
                present[key] = not present[key]
            pnl[key] += rng.choice([-1, 1]) * rng.randint(300, 3000)
        script.append(
            [pf_row(tok, ts, str(net[k]), f"{pnl[k]}.00", es)
             for k in KEYS if present[k] for es, tok, ts in [k]]
        )  # fmt: skip
    return script


def stored_positions(
    state: Path, *, with_carried: bool = False
) -> dict[tuple[str, str], tuple[Decimal, Decimal]] | None:
    """The committed rows the last poll reported, and with ``with_carried`` also the rows
    carried for it (docs/architecture.md, "Rows that vanish"); None before the state file has
    any."""
    try:
        rows = query(
            state,
            "SELECT exchange_segment, token, net_qty, mtm, carried FROM positions"
            " WHERE account = 'p1'",
        )
        polled = query(state, "SELECT count(*) FROM accounts WHERE account = 'p1'")[0][0]
    except sqlite3.Error:
        return None
    if not polled:
        return None
    return {
        (seg, tok): (Decimal(net), Decimal(mtm))
        for seg, tok, net, mtm, carried in rows
        if with_carried or not carried
    }


def expected_positions(rows: Rows) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    """What the state file holds once ``rows`` are committed."""
    return {(r["es"], r["tok"]): (Decimal(r["netQty"]), Decimal(r["pnl"])) for r in rows}


@dataclass
class ScriptedPortfolio(portfolio.PortfolioState):
    """The portfolio fake serving a script: the next step once the current one is stored."""

    script: list[Rows] = field(default_factory=list)
    state_path: Path = Path()
    step: int = 0
    on_request: Callable[[], None] | None = None  # called once as the next request arrives

    def body(self) -> bytes:
        """The current step, after moving on if the daemon has committed it."""
        if self.on_request is not None:
            hook, self.on_request = self.on_request, None
            hook()
        last = len(self.script) - 1
        if self.step < last and stored_positions(self.state_path) == expected_positions(
            self.script[self.step]
        ):
            self.step += 1
        self.rows = self.script[self.step]
        return super().body()

    def done(self) -> bool:
        """True once the last step is committed with no row left carried: a row it lacks is
        removed only by a second poll of it."""
        last = self.script[-1]
        return self.step == len(self.script) - 1 and (
            stored_positions(self.state_path, with_carried=True) == expected_positions(last)
        )


def replay_file(path: Path, script: list[Rows]) -> Path:
    """The script in the replay format, one line per step, a second apart, today, and the last
    step twice: the fake serves it until no row is left carried (``done``)."""
    start = datetime.now(ZoneInfo(noon_zone())).replace(microsecond=0)
    with path.open("w") as out:
        for n, rows in enumerate([*script, script[-1]]):
            body = {"Status": "Success", "message": "", "errorCode": "", "data": rows}
            line = {"at": (start + timedelta(seconds=n)).isoformat(), "account": "p1",
                    "broker": "portfolio", "status": 200, "body": body}  # fmt: skip
            out.write(json.dumps(line) + "\n")
    return path


def identity(alert: dict[str, Any]) -> str:
    """An alert without its time: what replay and the live daemon must agree on."""
    return json.dumps({k: v for k, v in alert.items() if k != "at"}, sort_keys=True)


@dataclass
class Lane:
    """One lane's runs: the daemons in order and where each was killed."""

    number: int
    runs: list[Daemon] = field(default_factory=list)
    points: Counter[str] = field(default_factory=Counter)
    steps_at_kill: list[int] = field(default_factory=list)
    after_commits: int = 0  # runs killed after they had committed a poll
    state: Path = Path()


def committed(daemon: Daemon) -> bool:
    """True once the run has logged a commit."""
    return any(daemon.events(name) for name in COMMITTED)


async def kill_at(point: str, daemon: Daemon, fake: ScriptedPortfolio, rng: random.Random) -> None:
    """Let the run reach ``point``, then SIGKILL it."""
    if point == "start-up":
        # A random moment of start-up, and no later than the line saying it is over.
        daemon.kill_on = lambda name, line: name == "stderr" and '"daemon_started"' in line
        await asyncio.sleep(rng.uniform(0.0, 0.5))
    elif point == "mid-fetch":
        # Killed by the fake as the request arrives, while the daemon awaits the answer.
        assert daemon.process is not None
        fake.on_request = daemon.process.kill
        await until(daemon.exited, "a positions request to die in", DEADLINE, daemon)
    elif point == "idle":
        # Between polls: after this run's first committed poll, before its next request.
        await until(lambda: committed(daemon), "a committed poll", DEADLINE, daemon)
        await asyncio.sleep(rng.uniform(0.0, 0.2))
    else:
        # Killed from the reader thread the moment the line arrives.
        if point == "after-commit":
            daemon.kill_on = lambda name, line: (
                name == "stderr" and any(f'"{event}"' in line for event in COMMITTED)
            )
        else:
            daemon.kill_on = lambda name, line: name == "stdout" and line.startswith("{")
        await until(daemon.exited, f"the {point} line to kill on", DEADLINE, daemon)
    daemon.kill_on = None
    fake.on_request = None
    daemon.kill9()


def printed_all(lane: Lane, expected: list[str]) -> bool:
    """True when the lane's runs have printed every alert of the session."""
    seen = {identity(json.loads(line)) for *_, line in printed(lane) if line.startswith("{")}
    return seen >= set(expected)


async def run_lane(harness: Harness, number: int, script: list[Rows], expected: list[str]) -> Lane:
    """``KILLS_PER_LANE`` killed runs, then one run left to finish the session."""
    rng = random.Random(SEED + number)
    lane = Lane(number, state=harness.tmp / f"lane{number}.db")
    fake = ScriptedPortfolio(token=PORTFOLIO_TOKEN, script=script, state_path=lane.state)
    async with serve(portfolio.make_app(fake)) as base:
        config = harness.rules([portfolio_account(base)], f"lane{number}.yaml", rules=RULES)
        for _ in range(KILLS_PER_LANE):
            point = rng.choice(KILL_POINTS)
            if point == "mid-delivery" and printed_all(lane, expected):
                point = "after-commit"  # no alert is left to print: this run would wait for ever
            daemon = harness.daemon(config, lane.state)
            lane.runs.append(daemon)
            await kill_at(point, daemon, fake, rng)
            lane.points[point] += 1
            lane.steps_at_kill.append(fake.step)
            lane.after_commits += committed(daemon)
        last = harness.daemon(config, lane.state)
        lane.runs.append(last)
        await last.started(DEADLINE)
        # Its first good poll: resumed from the state a killed run left, or (when every kill
        # landed before a first commit) the lane's baseline.
        await until(lambda: committed(last), "the last run's first good poll", DEADLINE, last)
        await until(fake.done, "the whole session committed", DEADLINE, last)
        await until(lambda: pending_deliveries(lane.state) == 0, "an empty outbox", DEADLINE, last)
        assert await last.sigterm(DEADLINE) == 0
    return lane


def printed(lane: Lane) -> list[tuple[int, int, str]]:
    """(run, line number in the run, line) of every alert line printed, in order."""
    return [
        (run, n, line)
        for run, daemon in enumerate(lane.runs)
        for n, line in enumerate(daemon.stdout_lines)
    ]


# A hundred kills and restarts: minutes on a busy machine, so beyond the suite's 120 s guard.
# Each kill point waits on an event with its own deadline, so a hang still fails the test.
@pytest.mark.timeout(900)
async def test_kill9_at_random_points_loses_nothing_and_repeats_only_the_alert_in_flight(
    harness: Harness,
) -> None:
    """100 SIGKILLs over one scripted session: every alert delivered, duplicates only in flight."""
    script = make_script(STEPS, SCRIPT_SEED)
    rules = harness.rules([], "replay-rules.yaml", rules=RULES)
    expected = [
        identity(a) for a in replay_alerts(replay_file(harness.tmp / "s.jsonl", script), rules)
    ]
    assert len(expected) >= 20, "a session with many alerts"

    lanes = await asyncio.gather(*(run_lane(harness, n, script, expected) for n in range(LANES)))

    kills = sum(len(lane.runs) - 1 for lane in lanes)
    assert kills == LANES * KILLS_PER_LANE == 100
    for lane in lanes:
        lines = printed(lane)
        assert all(line.startswith("{") for _, _, line in lines), "no torn line"
        alerts = [json.loads(line) for _, _, line in lines]
        # Distinct deliveries (the poll time tells equal alerts of different polls apart).
        delivered = Counter(identity(json.loads(line)) for line in {line for *_, line in lines})
        assert delivered == Counter(expected), f"lane {lane.number}"
        # A repeat is only ever the poll in flight (the console sink prints a poll's alerts
        # together): alerts of the last poll printed before a kill, printed again in their first
        # order at the start of the next run that prints anything (a kill can cut that run
        # short again, so it may be part of the poll).
        first_order: list[str] = []
        repeats = 0
        previous: list[str] = []
        for daemon in lane.runs:
            output = list(daemon.stdout_lines)
            seen = set(first_order)
            again = 0
            while again < len(output) and output[again] in seen:
                again += 1
            assert not seen & set(output[again:]), f"lane {lane.number}: a repeat not in flight"
            if again:
                repeated = output[:again]
                polls = {(a["account"], a["at"]) for a in map(json.loads, repeated)}
                last = json.loads(previous[-1])
                assert polls == {(last["account"], last["at"])}, f"lane {lane.number}: {repeated}"
                assert repeated == [line for line in first_order if line in set(repeated)]
            repeats += again
            first_order += output[again:]
            previous = output or previous
        print(
            f"lane {lane.number}: {len(lane.runs) - 1} kills {dict(lane.points)}, "
            f"{len(expected)} alerts expected, {len(alerts)} printed, {repeats} repeated in flight,"
            f" {lane.after_commits} kills after a commit, steps at the kills {lane.steps_at_kill}"
        )
        committed = stored_alerts(lane.state)
        assert [identity(a) for a in committed] == expected, "each committed once, in order"
        assert pending_deliveries(lane.state) == 0
        # The premise: the kills cut into a session in progress, not a daemon still starting.
        assert lane.after_commits >= KILLS_PER_LANE // 5, f"lane {lane.number}: {lane.points}"
        assert lane.steps_at_kill[-1] > 0, "the session advanced across the kills"
    assert set().union(*(lane.points for lane in lanes)) == set(KILL_POINTS)
