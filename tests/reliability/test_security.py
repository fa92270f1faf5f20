"""Security checks: private files, safe YAML only, credentials only from the environment.

With the leak check every test of this directory passes (no known secret in any log line, alert
or file: ``tests/reliability/conftest.py``) and bandit in ``make lint``.
"""

from __future__ import annotations

import ast
import inspect
import stat
from pathlib import Path

import pytest
import yaml

import monitor
from monitor import config
from tests.fakes import portfolio, serve
from tests.leaks import assert_no_secret_leaks
from tests.reliability.harness import (
    PORTFOLIO_TOKEN,
    SECRETS,
    Harness,
    portfolio_account,
    read_jsonl,
)

MONITOR = Path(monitor.__file__).parent
# Every PyYAML name that can build arbitrary Python objects from a document.
UNSAFE = {
    "load", "load_all", "full_load", "full_load_all", "unsafe_load", "unsafe_load_all",
    "Loader", "FullLoader", "UnsafeLoader", "UnsafeConstructor", "FullConstructor", "Constructor",
}  # fmt: skip


def process_command_line(pid: int) -> bytes:
    """The arguments a process was started with, as ps shows them."""
    return Path(f"/proc/{pid}/cmdline").read_bytes()


async def test_state_lock_and_record_files_are_owner_only(harness: Harness) -> None:
    """state.db, its WAL companions and the --record file: mode 0600. The token
    reached the broker from the environment, never the command line or /metrics."""
    fake = portfolio.PortfolioState(token=PORTFOLIO_TOKEN)
    state, record = harness.tmp / "state.db", harness.tmp / "session.jsonl"
    async with serve(portfolio.make_app(fake)) as base:
        daemon = harness.daemon(
            harness.rules([portfolio_account(base)]), state, "--record", str(record)
        )
        await daemon.started()
        await daemon.wait_event("baseline_taken")
        assert daemon.process is not None
        modes = {
            path.name: stat.S_IMODE(path.stat().st_mode)
            for path in (
                state,
                Path(f"{state}-wal"),
                Path(f"{state}-shm"),
                record,
            )
        }
        command_line = process_command_line(daemon.process.pid)
        metrics = await daemon.metrics()
        assert await daemon.sigterm() == 0

    assert modes == dict.fromkeys(modes, 0o600)
    assert fake.requests and all(
        r.headers["Authorization"] == PORTFOLIO_TOKEN for r in fake.requests
    )
    assert read_jsonl(record), "the session was recorded"
    assert_no_secret_leaks(SECRETS.values(), command_line, metrics)


def test_yaml_is_only_ever_loaded_safely() -> None:
    """monitor/ calls no PyYAML loader that can build Python objects: yaml.safe_load, or
    yaml.load with a SafeLoader subclass (config/yaml_lines.py's keeps line numbers) that adds no
    python/ tags. Exactly the two readers of YAML files load it: rules.yaml and rule tests."""
    checked: list[str] = []
    for source in sorted(MONITOR.rglob("*.py")):
        tree = ast.parse(source.read_text(), str(source))
        module = None
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "yaml":
                assert not {a.name for a in node.names} & UNSAFE, f"{source}:{node.lineno}"
            if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
                continue
            if node.value.id != "yaml" or node.attr not in UNSAFE:
                continue
            where = f"{source.relative_to(MONITOR.parent)}:{node.lineno}"
            assert node.attr == "load", f"{where}: yaml.{node.attr}"
            call = next(c for c in ast.walk(tree) if isinstance(c, ast.Call) and c.func is node)
            [loader] = [k.value for k in call.keywords if k.arg == "Loader"]
            assert isinstance(loader, ast.Name), where
            if module is None:
                module = __import__(
                    ".".join(source.relative_to(MONITOR.parent).with_suffix("").parts),
                    fromlist=["_"],
                )
            cls = getattr(module, loader.id)
            assert inspect.isclass(cls) and issubclass(cls, yaml.SafeLoader), where
            tags = [*cls.yaml_constructors, *cls.yaml_multi_constructors]
            assert not [t for t in tags if t and "python/" in t], where
            checked.append(str(source.relative_to(MONITOR.parent)))
    assert sorted(checked) == ["monitor/config/yaml_lines.py", "monitor/rule_tests/reading.py"]


def test_a_python_tag_in_rules_yaml_is_refused_and_never_run(tmp_path: Path) -> None:
    """``!!python/object/apply`` is an error, not a call."""
    marker = tmp_path / "ran"
    path = tmp_path / "rules.yaml"
    path.write_text(
        f"rules:\n  - name: !!python/object/apply:os.system ['touch {marker}']\n"
        "    kind: squared_off\n"
    )
    with pytest.raises(config.ConfigError, match="could not determine a constructor"):
        config.load(path)
    assert not marker.exists()


def test_credentials_come_only_from_the_environment(tmp_path: Path) -> None:
    """A value written into rules.yaml is refused without being echoed; a reference is read
    from the environment given, and from nowhere else."""
    path = tmp_path / "rules.yaml"
    account = portfolio_account("http://127.0.0.1:1")
    body = yaml.safe_dump({"accounts": [account], "rules": [{"name": "c", "kind": "squared_off"}]})
    path.write_text(body.replace("${PM_REL_PORTFOLIO_TOKEN}", PORTFOLIO_TOKEN))
    with pytest.raises(config.ConfigError) as refused:
        config.load(path)
    assert_no_secret_leaks([PORTFOLIO_TOKEN], refused.value)
    assert "must be an environment reference" in str(refused.value)

    path.write_text(body)
    loaded = config.load(path)
    environ = {"PM_REL_PORTFOLIO_TOKEN": PORTFOLIO_TOKEN}
    assert config.resolve_credentials(loaded, loaded.accounts[0], environ) == {
        "token": PORTFOLIO_TOKEN
    }
    with pytest.raises(config.ConfigError, match="PM_REL_PORTFOLIO_TOKEN is not set"):
        config.resolve_credentials(loaded, loaded.accounts[0], {})
