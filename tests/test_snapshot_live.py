"""`position-monitor snapshot` as a user runs it: credentials from the environment, a real login."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.brokers.test_kotak_neo_live import SECRETS, make_state
from tests.fakes import serve
from tests.fakes.kotak_neo import make_app

ENV = {f"PM_KOTAK_{name.upper()}": value for name, value in SECRETS.items()}


def rules(tmp_path: Path, base: str) -> Path:
    """A rules file with one kotak_neo account whose login host is the fake."""
    credentials = "".join(f'      {name}: "${{PM_KOTAK_{name.upper()}}}"\n' for name in SECRETS)
    path = tmp_path / "rules.yaml"
    path.write_text(
        "accounts:\n  - id: kotak-main\n    broker: kotak_neo\n"
        f"    base_url: {base}\n    credentials:\n{credentials}"
        "rules:\n  - name: closed\n    kind: squared_off\n"
    )
    return path


async def run_snapshot(path: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """Run the installed CLI in a subprocess while this loop keeps serving the fake."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", "snapshot", "kotak-main", "--config", str(path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_snapshot_logs_in_and_prints_priced_positions(tmp_path: Path) -> None:
    """Login (TOTP + MPIN), positions and one quote call: a table with LTP and MTM, exit 0."""
    state = make_state()
    async with serve(make_app(state)) as base:
        code, out, err = await run_snapshot(rules(tmp_path, base), ENV)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["SYMBOL", "SEGMENT", "PRODUCT", "NET", "QTY", "LTP", "MTM"]
    assert len(lines) == 2 + len(state.rows)
    assert lines[-1].startswith(f"{len(state.rows)} positions at ")
    assert [r.endpoint for r in state.requests] == ["login", "validate", "positions", "quotes"]
    for secret in SECRETS.values():
        assert secret not in out


async def test_snapshot_with_a_wrong_mpin_fails_without_the_secret(tmp_path: Path) -> None:
    """A refused login: exit 1, the step named, the MPIN nowhere in the output."""
    async with serve(make_app(make_state())) as base:
        code, out, err = await run_snapshot(
            rules(tmp_path, base), {**ENV, "PM_KOTAK_MPIN": "000111"}
        )
    assert (code, out) == (1, "")
    assert err.strip() == (
        "position-monitor: account kotak-main: kotak_neo: tradeApiValidate: HTTP 400: login refused"
    )
    assert "000111" not in err
