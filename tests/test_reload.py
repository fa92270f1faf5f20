"""``reload.plan``: what a reload changes, from two configs read from plain text."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor import config
from monitor.reload import Changes, plan

BASE = """
accounts:
  - {id: a1, broker: simulator, poll_every: 1s}
  - {id: a2, broker: simulator, poll_every: 1s}
rules:
  - {name: loss, kind: mtm_below, threshold: -500, for: 10s}
  - {name: closed, kind: squared_off}
notify:
  - {kind: console, name: screen}
  - {kind: console, name: log, format: json}
"""


def load(tmp_path: Path, text: str, name: str = "rules.yaml") -> config.Config:
    """A config read from ``text``."""
    path = tmp_path / name
    path.write_text(text)
    return config.load(path)


def test_the_same_file_changes_nothing(tmp_path: Path) -> None:
    """Two readings of one file: no rule, account or sink changes, nothing needs a restart."""
    old, new = load(tmp_path, BASE), load(tmp_path, BASE, "again.yaml")
    result = plan(old, new)
    assert (result.rules, result.accounts, result.sinks) == (Changes(), Changes(), Changes())
    assert result.needs_restart == ()
    assert result.summary() == {}


def test_rules_are_added_changed_and_removed_by_name_and_definition(tmp_path: Path) -> None:
    """An option or the severity changed is a changed rule; a kept one is unchanged."""
    text = BASE.replace("threshold: -500", "threshold: -900").replace(
        "  - {name: closed, kind: squared_off}\n",
        "  - {name: short, kind: new_short}\n",
    )
    result = plan(load(tmp_path, BASE), load(tmp_path, text, "new.yaml"))
    assert result.rules == Changes(added=("short",), changed=("loss",), removed=("closed",))
    severity = BASE.replace("kind: squared_off}", "kind: squared_off, severity: critical}")
    assert plan(load(tmp_path, BASE), load(tmp_path, severity, "s.yaml")).rules == Changes(
        changed=("closed",)
    )


def test_accounts_added_removed_and_changed(tmp_path: Path) -> None:
    """A new interval is a changed account; an id gone is removed, a new id added."""
    text = BASE.replace(
        "{id: a1, broker: simulator, poll_every: 1s}", "{id: a1, broker: simulator, poll_every: 2s}"
    )
    text = text.replace("id: a2,", "id: a3,")
    result = plan(load(tmp_path, BASE), load(tmp_path, text, "new.yaml"))
    assert result.accounts == Changes(added=("a3",), changed=("a1",), removed=("a2",))
    assert result.summary() == {
        "accounts_added": ["a3"], "accounts_changed": ["a1"], "accounts_removed": ["a2"],
    }  # fmt: skip


def test_the_simulator_runs_when_no_account_is_configured(tmp_path: Path) -> None:
    """Removing every account starts the demo simulator, as a start would."""
    text = BASE.split("rules:")[1]
    result = plan(load(tmp_path, BASE), load(tmp_path, "rules:" + text, "new.yaml"))
    assert result.accounts == Changes(added=("simulator",), removed=("a1", "a2"))


def test_new_holidays_change_every_account(tmp_path: Path) -> None:
    """The old holidays list closes every window: a new list restarts each poller."""
    windowed = BASE.replace("poll_every: 1s}", "poll_every: 1s, window: nse}")
    new = load(tmp_path, windowed + "holidays: [2026-01-27]\n", "new.yaml")
    closed = [a.window.is_open(datetime(2026, 1, 27, 5, tzinfo=UTC)) for a in new.accounts]
    assert closed == [False, False], "the premise: the list closes every window"
    assert plan(load(tmp_path, windowed), new).accounts == Changes(changed=("a1", "a2"))


def test_sinks_added_changed_and_removed(tmp_path: Path) -> None:
    """A sink's routing or format changed is a changed sink."""
    text = BASE.replace(
        "{kind: console, name: screen}", "{kind: console, name: screen, min_severity: critical}"
    )
    text = text.replace("name: log,", "name: file,")
    result = plan(load(tmp_path, BASE), load(tmp_path, text, "new.yaml"))
    assert result.sinks == Changes(added=("file",), changed=("screen",), removed=("log",))


def test_state_and_listen_need_a_restart(tmp_path: Path) -> None:
    """Only the state file and the listen address wait for a restart; lifecycle does not."""
    daemon = "daemon: {state: other.db, listen: '127.0.0.1:9999', lifecycle: true}\n"
    result = plan(load(tmp_path, BASE), load(tmp_path, BASE + daemon, "new.yaml"))
    assert result.needs_restart == ("daemon.state", "daemon.listen")
    lifecycle = load(tmp_path, BASE + "daemon: {lifecycle: true}\n", "l.yaml")
    assert lifecycle.lifecycle, "the premise: the field was read"
    assert plan(load(tmp_path, BASE), lifecycle).needs_restart == ()


def test_lifecycle_must_be_a_boolean(tmp_path: Path) -> None:
    """``daemon.lifecycle: yes please`` is one problem line naming the field and line."""
    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules: [{name: closed, kind: squared_off}]\ndaemon:\n  lifecycle: yes please\n"
    )
    with pytest.raises(config.ConfigError) as caught:
        config.load(path)
    assert caught.value.problems == [
        f"{path}: daemon: lifecycle: must be true or false; got 'yes please' (line 3)"
    ]
