"""Operator input the CLI must refuse with one line and exit 2, never hang, swell or crash.

Each case runs ``position-monitor`` as a subprocess with a timeout, so a regression (reading
/dev/zero for ever, waiting on a FIFO) fails the test instead of hanging the suite. Big files are
sparse: nothing here allocates gigabytes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

RULES = Path(__file__).parent / "fixtures" / "rules" / "replay.yaml"
GOOD = '"account": "a", "broker": "kotak_neo", "status": 200'
BODY = '"body": {"stat": "Ok", "stCode": 200, "data": []}'


def cli(*args: str | Path) -> tuple[int, list[str]]:
    """Exit status and standard error lines of one run (60 s is far beyond any honest run)."""
    done = subprocess.run(
        [sys.executable, "-m", "monitor", *map(str, args)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return done.returncode, done.stderr.splitlines()


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


def sparse(path: Path, size: int) -> Path:
    with path.open("wb") as file:
        file.truncate(size)
    return path


@pytest.mark.parametrize("command", [["check"], ["snapshot", "a", "--config"]])
def test_rules_file_that_is_not_a_regular_file_is_refused(command: list[str], fifo: Path):
    for path in (fifo, Path("/dev/zero")):
        assert cli(*command, path) == (2, [f"{path}: cannot read: [Errno 22] not a regular file"])


def test_rules_file_over_the_cap_is_refused(tmp_path: Path):
    path = sparse(tmp_path / "rules.yaml", 8 * 1024**3)
    assert cli("check", path) == (2, [f"{path}: cannot read: larger than 1048576 bytes"])


def test_deeply_nested_rules_file_is_a_yaml_error(tmp_path: Path):
    path = tmp_path / "rules.yaml"
    path.write_text("rules: " + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    assert cli("check", path) == (2, [f"{path}: invalid YAML: nested too deeply"])


def test_replay_file_that_is_not_a_regular_file_is_refused(fifo: Path):
    expected = (2, [f"{fifo}: cannot read: not a regular file"])
    assert cli("replay", fifo, "--rules", RULES) == expected


def test_replay_line_over_the_cap_is_refused(tmp_path: Path):
    path = sparse(tmp_path / "polls.jsonl", 100 * 1024**2)  # one line of NULs
    code, err = cli("replay", path, "--rules", RULES)
    assert (code, err) == (2, [f"{path}:1: longer than 17825792 bytes (a body may have 16777216)"])


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (f'{{"at": "0001-01-01T00:00:00+05:30", {GOOD}, {BODY}}}', "at: out of range"),
        (f'{{"at": "9999-12-31T23:59:59-05:30", {GOOD}, {BODY}}}', "at: out of range"),
        (
            f'{{"at": "2026-11-23T09:20:05+05:30", "at": "2026-11-24T09:20:05+05:30", {GOOD}}}',
            "duplicate key 'at'",
        ),
        (
            f'{{"at": "2026-11-23T09:20:05+05:30", {GOOD}, "quotes": {{"x:1": "1", "x:1": "2"}}}}',
            "quotes: duplicate key 'x:1'",
        ),
        (
            f'{{"at": "2026-11-23T09:20:05+05:30", {GOOD}, "quotes": {"[" * 100_000}}}',
            "nested too deeply",
        ),
        (
            f'{{"at": "2026-11-23T09:20:05+05:30", {GOOD}, "body": {"[" * 100_000}}}',
            "nested too deeply",
        ),
    ],
    ids=["year-1", "year-9999", "duplicate-at", "duplicate-quote", "deep-quotes", "deep-body"],
)
def test_hostile_replay_line_is_file_line_reason_and_exit_2(tmp_path: Path, line: str, reason):
    path = tmp_path / "polls.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    code, err = cli("replay", path, "--rules", RULES)
    assert code == 2
    assert len(err) == 1 and err[0].startswith(f"{path}:1: {reason}")


def test_duplicate_key_in_a_replayed_body_is_a_failed_poll(tmp_path: Path):
    """As in the daemon: the poll fails, and the replay goes on to the next line."""
    path = tmp_path / "polls.jsonl"
    at = '"at": "2026-11-23T09:20:05+05:30"'
    duplicate = '"body": {"stat": "Ok", "stat": "Ok", "stCode": 200, "data": []}'
    path.write_text(f"{{{at}, {GOOD}, {duplicate}}}\n{{{at}, {GOOD}, {BODY}}}\n", encoding="utf-8")
    code, err = cli("replay", path, "--rules", RULES)
    assert (code, err) == (
        0,
        [f"{path}:1: account a: poll failed: kotak_neo: body: duplicate key 'stat'"],
    )
