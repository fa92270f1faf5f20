"""Accounts split across daemons: three replicas on one rules.yaml poll every account once, as
``position-monitor shards 3`` says; an empty shard stays ready without the simulator."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections import defaultdict
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from monitor import cli, config, daemon
from monitor.shard import Shard, owner
from tests.daemon_process import DaemonProcess
from tests.fakes import ThreadedServer, serve
from tests.fakes.portfolio import PATH, PortfolioState

ACCOUNTS = [f"desk-{n:02d}" for n in range(12)]
SHARDS = 3


def rules(base: str) -> str:
    """Every account on the same fake, its base URL naming it, its token from the environment
    of whichever daemon polls it."""
    entries = "".join(
        f"""\
  - id: {account}
    broker: portfolio
    base_url: {base}/{account}
    poll_every: 500ms
    window: always
    credentials:
      token: "${{PM_SHARD_TOKEN_{n}}}"
"""
        for n, account in enumerate(ACCOUNTS)
    )
    return f"accounts:\n{entries}rules:\n  - name: closed\n    kind: squared_off\n"


class Polls:
    """Which daemon (the token it sent) polled which account (the path it called)."""

    def __init__(self) -> None:
        self.by_account: dict[str, list[str]] = defaultdict(list)
        self.lock = threading.Lock()
        self.hit = threading.Condition(self.lock)

    def app(self) -> web.Application:
        body = PortfolioState(token="").body()

        async def positions(request: web.Request) -> web.Response:
            with self.hit:
                account = request.match_info["account"]
                self.by_account[account].append(request.headers.get("Authorization", ""))
                self.hit.notify_all()
            return web.Response(body=body, content_type="application/json")

        app = web.Application()
        app.router.add_post("/{account}" + PATH, positions)
        return app

    def wait_for_each_polled(self, times: int, timeout: float) -> dict[str, list[str]]:
        """Every account's pollers once every account was polled ``times`` times."""
        with self.hit:
            done = self.hit.wait_for(
                lambda: all(len(self.by_account[a]) >= times for a in ACCOUNTS), timeout
            )
            assert done, f"not every account polled {times} times: {dict(self.by_account)}"
            return {account: list(self.by_account[account]) for account in ACCOUNTS}


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_three_daemons_poll_every_account_exactly_once_as_shards_3_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    polls = Polls()
    with ThreadedServer(polls.app) as server:
        rules_path = tmp_path / "rules.yaml"
        rules_path.write_text(rules(server.base_url))
        assert cli.main(["shards", str(SHARDS), "--config", str(rules_path)]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [line.split()[0] for line in lines] == ACCOUNTS  # file order
        expected = {account: f"daemon-{index}" for account, index in map(str.split, lines)}
        assert set(expected.values()) == {f"daemon-{i}" for i in range(SHARDS)}  # none empty

        daemons = []
        for index in range(SHARDS):
            tokens = {f"PM_SHARD_TOKEN_{n}": f"daemon-{index}" for n in range(len(ACCOUNTS))}
            # The last replica finds its ordinal in its pod name, as in a StatefulSet.
            if index == SHARDS - 1:
                shard, env = f"auto/{SHARDS}", {**tokens, "POD_NAME": f"position-monitor-{index}"}
            else:
                shard, env = f"{index}/{SHARDS}", tokens
            state = tmp_path / f"state-{index}.db"
            daemons.append(DaemonProcess(rules_path, state, "--shard", shard, env=env))
        try:
            for process in daemons:
                process.start()
            # By an account's third poll every daemon has run its own jobs two rounds or more:
            # a daemon polling an account not its own would have shown up by then.
            pollers = polls.wait_for_each_polled(3, timeout=120)
            assert {account: set(seen) for account, seen in pollers.items()} == {
                account: {owner} for account, owner in expected.items()
            }
            for index, process in enumerate(daemons):
                started = process.wait_for_log("daemon_started")
                mine = [a for a, owner in expected.items() if owner == f"daemon-{index}"]
                assert started["accounts"] == mine
                assert started["shard"] == f"{index}/{SHARDS}"
                _, metrics = _get(process.port(), "/metrics")
                info = f'position_monitor_shard_info{{shard="{index}",shards="{SHARDS}"}} 1.0'
                assert info in metrics.decode()
        finally:
            for process in daemons:
                process.stop()


@pytest.mark.parametrize(
    ("value", "pod"),
    [("3/3", ""), ("auto/3", "position-monitor"), ("auto/3", "position-monitor-3")],
)
def test_a_bad_shard_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    value: str, pod: str,
) -> None:  # fmt: skip
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text("rules:\n  - name: closed\n    kind: squared_off\n")
    monkeypatch.setenv("POD_NAME", pod)
    assert cli.main(["run", "--config", str(rules_path), "--shard", value]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"--shard: '{value}': ")


def test_shards_refuses_a_count_that_is_not_a_positive_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text("rules:\n  - name: closed\n    kind: squared_off\n")
    assert cli.main(["shards", "0", "--config", str(rules_path)]) == 2
    assert capsys.readouterr().err.startswith("shards: '0': the number of shards must be")


def test_a_file_without_accounts_puts_the_simulator_on_one_shard(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text("rules:\n  - name: closed\n    kind: squared_off\n")
    assert cli.main(["shards", "2", "--config", str(rules_path)]) == 0
    assert capsys.readouterr().out == "simulator 0\n"


async def test_a_shard_without_accounts_is_ready_and_runs_no_simulator(tmp_path: Path) -> None:
    async with serve(web.Application()) as base:
        rules_path = tmp_path / "rules.yaml"
        rules_path.write_text(rules(base))
        loaded = config.load(rules_path)
        # Twelve accounts on 64 shards: most shards have none.
        empty = Shard(min(set(range(64)) - {owner(a, 64) for a in ACCOUNTS}), 64)
        settings = daemon.Settings(tmp_path / "state.db", "127.0.0.1", 0, shard=empty)
        running = daemon.Daemon(loaded, settings)
        await running.start()
        try:
            assert running.pollers.pollers == []  # neither the file's accounts nor the simulator
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{running.port}/readyz") as response,
            ):
                assert response.status == 200
                assert json.loads(await response.read()) == {
                    "ready": True, "accounts": 0, "stale_accounts": [],
                }  # fmt: skip
        finally:
            await running.stop()


async def test_a_reload_starts_only_the_shards_share_of_the_new_accounts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(len(ACCOUNTS)):
        monkeypatch.setenv(f"PM_SHARD_TOKEN_{n}", "token")
    this = Shard(1, SHARDS)
    async with serve(web.Application()) as base:
        rules_path = tmp_path / "rules.yaml"
        full = rules(base)
        first_four = full[: full.index(f"  - id: {ACCOUNTS[4]}")] + full[full.index("rules:") :]
        rules_path.write_text(first_four)
        loaded = config.load(rules_path)
        assert [a.id for a in loaded.accounts] == ACCOUNTS[:4]  # the premise
        secrets = {account: {"token": "token"} for account in ACCOUNTS[:4]}
        state = tmp_path / "state.db"
        settings = daemon.Settings(state, "127.0.0.1", 0, secrets, shard=this)
        running = daemon.Daemon(loaded, settings)
        await running.start()
        try:
            polled = [p.account.id for p in running.pollers.pollers]
            assert polled == [a for a in ACCOUNTS[:4] if this.owns(a)]
            rules_path.write_text(full)
            assert await running.reload() == []
            polled = [p.account.id for p in running.pollers.pollers]
            assert sorted(polled) == sorted(a for a in ACCOUNTS if this.owns(a))
            assert len(polled) < len(ACCOUNTS)
        finally:
            await running.stop()
