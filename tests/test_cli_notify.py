"""``position-monitor notify test`` against the fake Bot API, and ``check`` / ``run`` naming
every unset variable with its line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from monitor import cli
from tests.fakes import ThreadedServer
from tests.fakes.telegram import TOKEN, TelegramState, make_app
from tests.leaks import assert_no_secret_leaks

CHAT = "4242"
RULES = """\
accounts:
  - id: desk
    broker: torus
    credentials: {token: "${TEST_TORUS_TOKEN}"}
rules:
  - {name: fresh-short, kind: new_short}
notify:
  - kind: console
  - kind: telegram
    api_url: API
    bot_token: "${TEST_BOT_TOKEN}"
    chats:
      - {chat_id: "${TEST_CHAT_ID}", name: me}
"""


@pytest.fixture
def fake() -> Iterator[tuple[TelegramState, ThreadedServer]]:
    state = TelegramState(chats={CHAT})
    with ThreadedServer(lambda: make_app(state)) as server:
        yield state, server


@pytest.fixture
def rules(tmp_path: Path, fake: tuple[TelegramState, ThreadedServer]) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.replace("API", fake[1].base_url))
    return path


def notify_test(rules: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, str], str]:
    status = cli.main(["notify", "test", "--config", str(rules)])
    out, err = capsys.readouterr()
    report = dict(line.split(": ", 1) for line in out.splitlines() if not line[0].isdigit())
    return status, report, out + err


@pytest.mark.usefixtures("restore_logging")
def test_every_sink_delivered_is_exit_0(
    rules: Path,
    fake: tuple[TelegramState, ThreadedServer],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TEST_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TEST_CHAT_ID", CHAT)
    status, report, output = notify_test(rules, capsys)
    assert report == {"console": "delivered", "telegram:me": "delivered"}
    assert status == 0
    texts = fake[1].call(fake[0].texts, CHAT)
    assert len(texts) == 1 and "Test message from position-monitor notify test" in texts[0]
    assert_no_secret_leaks([TOKEN, TOKEN.split(":")[1]], output)


@pytest.mark.usefixtures("restore_logging")
def test_a_chat_that_never_messaged_the_bot_is_told_to(
    rules: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TEST_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TEST_CHAT_ID", "777")
    status, report, output = notify_test(rules, capsys)
    assert status == 1 and report["console"] == "delivered"
    assert report["telegram:me"].startswith(
        "not delivered: chat 777: Chat not found: message the bot first (send /start to"
        " @pm_test_bot;"
    )
    assert_no_secret_leaks([TOKEN, TOKEN.split(":")[1]], output)


@pytest.mark.usefixtures("restore_logging")
def test_a_rejected_token_is_told_to_get_a_new_one(
    rules: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wrong = "7000001:AAHsome-OTHER_token_for_tests_987654"
    monkeypatch.setenv("TEST_BOT_TOKEN", wrong)
    monkeypatch.setenv("TEST_CHAT_ID", CHAT)
    status, report, output = notify_test(rules, capsys)
    assert status == 1
    assert report["telegram:me"] == (
        "not delivered: chat 4242: bot telegram: token rejected: create a new one with @BotFather"
    )
    assert_no_secret_leaks([wrong, wrong.split(":")[1]], output)


@pytest.mark.usefixtures("restore_logging")
def test_nothing_listening_names_the_host_not_the_token(
    rules: Path,
    fake: tuple[TelegramState, ThreadedServer],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TEST_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TEST_CHAT_ID", CHAT)
    fake[1].call(setattr, fake[0], "down", True)
    status, report, output = notify_test(rules, capsys)
    host = fake[1].base_url.split("://")[1]
    assert status == 1
    assert report["telegram:me"].startswith(f"not delivered: chat 4242: cannot reach {host}: ")
    assert_no_secret_leaks([TOKEN, TOKEN.split(":")[1]], output)


@pytest.mark.usefixtures("restore_logging")
def test_an_unset_variable_is_named(
    rules: Path,
    fake: tuple[TelegramState, ThreadedServer],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TEST_BOT_TOKEN", TOKEN)
    monkeypatch.delenv("TEST_CHAT_ID", raising=False)
    status, report, _ = notify_test(rules, capsys)
    assert status == 1
    assert report == {
        "console": "delivered",
        "telegram:me": "not sent: variable TEST_CHAT_ID is unset",
    }
    assert fake[1].call(fake[0].texts) == []


HTTP_SINKS = """\
  - kind: webhook
    name: hook
    url: RECEIVER/hook
    secret: "${TEST_HOOK_SECRET}"
  - kind: alertmanager
    name: am
    url: RECEIVER
    bearer_token: "${TEST_AM_TOKEN}"
"""


@pytest.mark.usefixtures("restore_logging")
def test_every_kind_built_by_the_registry_takes_its_test_message(
    tmp_path: Path,
    fake: tuple[TelegramState, ThreadedServer],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Console, a Telegram chat, a signed webhook and Alertmanager each get one message; with
    Alertmanager's token unset it alone is not sent, and says which variable to set."""
    posts: list[tuple[str, dict[str, str], bytes]] = []

    async def record(request: web.Request) -> web.Response:
        posts.append((request.path, dict(request.headers), await request.read()))
        return web.Response(text="ok")

    def receiver_app() -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", record)
        app.router.add_post("/api/v2/alerts", record)
        return app

    secrets = [TOKEN, TOKEN.split(":")[1], "hook-secret-5150", "am-bearer-6160"]
    monkeypatch.setenv("TEST_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TEST_CHAT_ID", CHAT)
    monkeypatch.setenv("TEST_HOOK_SECRET", secrets[2])
    monkeypatch.setenv("TEST_AM_TOKEN", secrets[3])
    with ThreadedServer(receiver_app) as receiver:
        rules = tmp_path / "rules.yaml"
        entries = HTTP_SINKS.replace("RECEIVER", receiver.base_url)
        rules.write_text(RULES.replace("API", fake[1].base_url) + entries)
        status, report, output = notify_test(rules, capsys)
        assert report == {
            "console": "delivered", "telegram:me": "delivered", "hook": "delivered",
            "am": "delivered",
        }  # fmt: skip
        assert status == 0
        assert sorted(path for path, _, _ in posts) == ["/api/v2/alerts", "/hook"]
        headers = {path: sent for path, sent, _ in posts}
        assert headers["/api/v2/alerts"]["Authorization"] == f"Bearer {secrets[3]}"
        assert "X-Position-Monitor-Signature" in headers["/hook"]
        assert all(b"notify-test" in body for _, _, body in posts)
        assert_no_secret_leaks(secrets, output)

        monkeypatch.delenv("TEST_AM_TOKEN")
        status, report, _ = notify_test(rules, capsys)
    assert status == 1
    assert report == {
        "console": "delivered", "telegram:me": "delivered", "hook": "delivered",
        "am": "not sent: variable TEST_AM_TOKEN is unset",
    }  # fmt: skip
    assert len(posts) == 3


def unset_lines(err: str) -> list[str]:
    """The lines of ``err`` naming an unset variable (a calendar nearing its last known date
    adds a warning of its own on some days: tests/test_calendars.py has those)."""
    return [line for line in err.splitlines() if " environment variable " in line]


def test_check_warns_of_every_unset_variable_and_strict_refuses(
    rules: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("TEST_TORUS_TOKEN", "TEST_BOT_TOKEN", "TEST_CHAT_ID"):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["check", str(rules)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{rules}: OK: 1 account")
    assert unset_lines(err) == [
        f"warning: {rules}: account 'desk': credentials.token: environment variable"
        " TEST_TORUS_TOKEN is not set (line 4)",
        f"warning: {rules}: notify 'telegram': bot_token: environment variable TEST_BOT_TOKEN"
        " is not set (line 11)",
        f"warning: {rules}: notify 'telegram': chats[0].chat_id: environment variable"
        " TEST_CHAT_ID is not set (line 13)",
    ]
    assert cli.main(["check", "--strict", str(rules)]) == 1
    _, strict = capsys.readouterr()
    assert unset_lines(strict) == [line.removeprefix("warning: ") for line in unset_lines(err)]
    monkeypatch.setenv("TEST_TORUS_TOKEN", "t")
    monkeypatch.setenv("TEST_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TEST_CHAT_ID", CHAT)
    assert cli.main(["check", "--strict", str(rules)]) == 0
    assert unset_lines(capsys.readouterr().err) == []


def test_run_names_every_unset_variable_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two accounts and a bot, all unset: run refuses, naming the four variables, not only the
    first account's."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        RULES.replace("API", "http://127.0.0.1:9").replace(
            "rules:\n",
            '  - id: other\n    broker: torus\n    credentials: {token: "${TEST_OTHER}"}\nrules:\n',
        )
    )
    for name in ("TEST_TORUS_TOKEN", "TEST_OTHER", "TEST_BOT_TOKEN", "TEST_CHAT_ID"):
        monkeypatch.delenv(name, raising=False)
    status = cli.main(["run", "--config", str(rules), "--state", str(tmp_path / "s.db")])
    named = [
        line.split("environment variable ")[1] for line in capsys.readouterr().err.splitlines()
    ]
    assert status == 2
    assert named == [
        "TEST_TORUS_TOKEN is not set (line 4)",
        "TEST_OTHER is not set (line 7)",
        "TEST_BOT_TOKEN is not set (line 14)",
        "TEST_CHAT_ID is not set (line 16)",
    ]
    assert not (tmp_path / "s.db").exists()
