"""The telegram entry of rules.yaml: validation lines, routing, and values from the env."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor import cli
from monitor.config import ConfigError, load, resolve_notify
from monitor.model import Alert, Severity
from monitor.notify.kind import settings_of
from monitor.notify.telegram.config import TelegramChat

GOOD = """\
rules:
  - {name: fresh-short, kind: new_short}
  - {name: desk-drawdown, kind: mtm_drawdown, threshold: 100, severity: critical}
notify:
  - kind: console
  - kind: telegram
    bot_token: "${TG_TOKEN}"
    api_url: http://127.0.0.1:1/
    chats:
      - {chat_id: "${TG_CHAT}", name: me}
      - chat_id: -1001234567890
        name: desk
        min_severity: critical
        accounts: ["kotak-*"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def alert(rule: str, severity: Severity, account: str) -> Alert:
    at = datetime(2026, 11, 23, tzinfo=UTC)
    return Alert(rule, "new_short", severity, account, None, None, at, "m", {})


def test_each_chat_is_a_destination_with_its_own_routing(tmp_path: Path) -> None:
    """Two chats become telegram:me and telegram:desk; desk takes critical kotak-* only."""
    config = load(write(tmp_path, GOOD))
    sinks = {s.name: s for s in config.sinks}
    assert list(sinks) == ["console", "telegram:me", "telegram:desk"]
    desk = sinks["telegram:desk"]
    assert settings_of(desk, TelegramChat).chat == "-1001234567890"
    assert settings_of(desk, TelegramChat).bot.api_url == "http://127.0.0.1:1"
    assert desk.accepts(alert("desk-drawdown", Severity.CRITICAL, "kotak-main"))
    assert not desk.accepts(alert("desk-drawdown", Severity.CRITICAL, "samco-1"))
    assert not desk.accepts(alert("fresh-short", Severity.WARNING, "kotak-main"))
    assert sinks["telegram:me"].accepts(alert("fresh-short", Severity.INFO, "samco-1"))


def test_values_come_from_the_environment(tmp_path: Path) -> None:
    """The token and the env-referenced chat id are resolved; literals pass through."""
    config = load(write(tmp_path, GOOD))
    notify = resolve_notify(config, {"TG_TOKEN": "123456:abc", "TG_CHAT": "4242"})
    assert notify.secrets == ("123456:abc",)
    values = {d.config.name: d.values for d in notify.destinations}
    assert values["telegram:me"] == {"bot_token": "123456:abc", "chat_id": "4242"}
    assert values["telegram:desk"]["chat_id"] == "-1001234567890"
    assert [s.name for s in notify.sinks] == ["console", "telegram:me", "telegram:desk"]


def test_unset_variables_stop_the_start_naming_them(tmp_path: Path) -> None:
    """A bot that is not optional needs its variables: one line each, no value echoed."""
    path = write(tmp_path, GOOD)
    with pytest.raises(ConfigError) as caught:
        resolve_notify(load(path), {"TG_CHAT": "not-a-chat"})
    assert caught.value.problems == [
        f"{path}: notify 'telegram': environment variable TG_TOKEN is not set",
        f"{path}: notify 'telegram': chat 'telegram:me': is not a chat id (-1001234567890)"
        " or @channel",
    ]


def test_an_optional_bot_without_its_variables_is_left_out(tmp_path: Path) -> None:
    """optional: true and nothing set: console only, and the bot is named as skipped."""
    config = load(write(tmp_path, GOOD.replace("    api_url:", "    optional: true\n    api_url:")))
    notify = resolve_notify(config, {})
    assert [s.name for s in notify.sinks] == ["console"]
    assert notify.skipped == ("telegram",)
    assert notify.secrets == ()


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (
            '    bot_token: "123456:ABCDEF"\n    chats: [{chat_id: 1}]\n',
            "notify 'telegram': bot_token: required: an environment reference such as"
            ' "${TELEGRAM_BOT_TOKEN}" (line 5)',
        ),
        (
            '    bot_token: "${T}"\n    chats: [{chat_id: "12ab"}]\n',
            "notify 'telegram': chats[0].chat_id: required: a chat id (-1001234567890), @channel"
            " or \"${TELEGRAM_CHAT_ID}\"; got '12ab' (line 6)",
        ),
        (
            '    bot_token: "${T}"\n',
            "notify 'telegram': chats: required: a list with at least one chat (line 4)",
        ),
        (
            '    bot_token: "${T}"\n    chats: [{chat_id: 1, name: a}, {chat_id: 2, name: a}]\n',
            "notify 'telegram': chats[1].name: duplicate of the chat on line 6 (line 6)",
        ),
        (
            '    bot_token: "${T}"\n    chats: [{chat_id: 1, colour: red}]\n',
            "notify 'telegram': chats[0].colour: unknown field (line 6)",
        ),
        (
            '    bot_token: "${T}"\n    commands: yes please\n    chats: [{chat_id: 1}]\n',
            "notify 'telegram': commands: must be true or false; got 'yes please' (line 6)",
        ),
    ],
    ids=["literal-token", "bad-chat-id", "no-chats", "duplicate-chat", "unknown-field", "flag"],
)
def test_check_names_the_field_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], entry: str, problem: str
) -> None:
    """Each mistake is one line naming the entry, field and line; exit status 2."""
    text = "rules:\n  - {name: r, kind: new_short}\nnotify:\n  - kind: telegram\n" + entry
    path = write(tmp_path, text)
    assert cli.main(["check", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [f"{path}: {problem}"]
    assert "123456:ABCDEF" not in captured.err


def test_one_bot_in_two_entries_is_refused(tmp_path: Path) -> None:
    """Two entries with the same token would both poll getUpdates: refused, naming both."""
    path = write(
        tmp_path,
        "rules:\n  - {name: r, kind: new_short}\nnotify:\n"
        '  - {kind: telegram, name: a, bot_token: "${T1}", chats: [{chat_id: 1}]}\n'
        '  - {kind: telegram, name: b, bot_token: "${T2}", chats: [{chat_id: 2}]}\n',
    )
    with pytest.raises(ConfigError) as caught:
        resolve_notify(load(path), {"T1": "123:same", "T2": "123:same"})
    assert caught.value.problems == [
        f"{path}: notify 'b': bot_token: the same bot as notify 'a'; give one entry several"
        " chats instead"
    ]
