"""``position-monitor check``: the rules.yaml contract (README, "rules.yaml" and "Commands").

Success is exit 0 and one ``FILE: OK: ...`` line on stdout; every problem is one
``FILE: OWNER: FIELD: REASON (line N)`` line on stderr with exit 2.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import replace
from datetime import date, time, timedelta
from pathlib import Path

import pytest

from monitor import config
from monitor.cli import main
from monitor.notify.registry import SINK_KINDS
from monitor.rules.registry import RULE_KINDS
from monitor.schedule import ALWAYS, NO_CALENDAR, PRESETS, Calendar, Window

RULES = Path(__file__).parent / "fixtures" / "rules"
KINDS = ", ".join(RULE_KINDS)  # the registry's order; test_filters pins its contents
BROKERS = "kotak_neo, portfolio, samco, alphapoint, torus, simulator"
TOP_LEVEL = "timezone, calendars, holidays, accounts, rules, notify, daemon"
DURATION = "must be a duration like 5s, 500ms or 1m"


_RUNNING_OUT = re.compile(r"^warning: .*: calendar (nse|mcx): exchange holidays are known only ")
_UNSET_VARIABLE = re.compile(r"^warning: .*: environment variable \w+ is not set")


def check(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, list[str], list[str]]:
    """Run ``check PATH`` in-process; return the exit code and the stdout/stderr lines, but for
    the warnings of unset variables (tests/test_cli_notify.py has those)."""
    code = main(["check", str(path)])
    out, err = capsys.readouterr()
    # The notice of a calendar nearing its last known date depends on today's date:
    # tests/test_calendars.py checks it on fixed dates.
    lines = [
        line
        for line in err.splitlines()
        if not _RUNNING_OUT.search(line) and not _UNSET_VARIABLE.search(line)
    ]
    return code, out.splitlines(), lines


def test_bundled_rules_pass(capsys: pytest.CaptureFixture[str], bundled_rules: Path) -> None:
    """The shipped rules.yaml is valid: exit 0 and exactly one summary line."""
    code, out, err = check(capsys, bundled_rules)
    assert (code, err) == (0, [])
    assert out == [
        f"{bundled_rules}: OK: no accounts (run uses the built-in simulator); "
        "7 rules (1 mtm_above, 1 mtm_below, 2 mtm_drawdown, 1 new_short, 1 position_limit, "
        "1 squared_off); sinks: console,"
        " telegram:me (optional)"
    ]


def test_valid_file_with_accounts(capsys: pytest.CaptureFixture[str]) -> None:
    """A valid file with accounts and a notify section is summarised on one line."""
    path = RULES / "valid.yaml"
    code, out, err = check(capsys, path)
    assert (code, err) == (0, [])
    assert out == [f"{path}: OK: 2 accounts; 2 rules (1 mtm_drawdown, 1 new_short); sinks: console"]


def test_check_defaults_to_rules_yaml(
    capsys: pytest.CaptureFixture[str],
    bundled_rules: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without an argument ``check`` validates rules.yaml in the working directory."""
    shutil.copy(bundled_rules, tmp_path / "rules.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "1:x")
    monkeypatch.setenv("TELEGRAM_CHAT_ID", "42")
    code = main(["check"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "rules.yaml: OK: no accounts (run uses the built-in simulator); "
        "7 rules (1 mtm_above, 1 mtm_below, 2 mtm_drawdown, 1 new_short, 1 position_limit, "
        "1 squared_off); sinks: console,"
        " telegram:me (optional)"
    ]


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        pytest.param(
            "unknown_kind.yaml",
            f"rule 'fresh-short': kind: unknown kind 'new_shorts'; expected one of {KINDS}"
            " (line 6)",
            id="unknown-kind",
        ),
        pytest.param(
            "missing_threshold.yaml",
            "rule 'desk-drawdown': threshold: required for kind mtm_drawdown (line 5)",
            id="missing-threshold",
        ),
        pytest.param(
            "negative_threshold.yaml",
            "rule 'desk-drawdown': threshold: must be a positive amount; got -5000 (line 5)",
            id="negative-threshold",
        ),
        pytest.param(
            "duplicate_rule_name.yaml",
            "rule 'closed': name: duplicate of the rule on line 2 (line 8)",
            id="duplicate-rule-name",
        ),
        pytest.param(
            "unknown_broker.yaml",
            f"account 'zerodha-1': broker: unknown broker 'zerodha'; expected one of {BROKERS}"
            " (line 6)",
            id="unknown-broker",
        ),
        pytest.param(
            "unknown_top_level.yaml",
            f"alerts: unknown field; expected one of {TOP_LEVEL} (line 5)",
            id="unknown-top-level-field",
        ),
        pytest.param(
            "bad_timezone.yaml",
            "timezone: unknown IANA time zone 'Asia/Bombay-ish' (line 2)",
            id="bad-timezone",
        ),
        pytest.param(
            "bad_poll_every.yaml",
            f"account 'samco-1': poll_every: {DURATION}; got 'every minute' (line 4)",
            id="bad-poll-every",
        ),
        pytest.param(
            "duplicate_key.yaml",
            "invalid YAML: duplicate key 'threshold' (line 6, column 5)",
            id="duplicate-yaml-key",
        ),
        pytest.param(
            "syntax_error.yaml",
            "invalid YAML: expected ',' or ']', but got ':' (line 5, column 9)",
            id="yaml-syntax-error",
        ),
        pytest.param(
            "empty.yaml",
            "rules: required: a list with at least one entry (line 1)",
            id="empty-file",
        ),
    ],
)
def test_one_problem(capsys: pytest.CaptureFixture[str], name: str, problem: str) -> None:
    """A file with one mistake gives exit 2 and exactly that line on stderr, nothing on stdout."""
    path = RULES / name
    code, out, err = check(capsys, path)
    assert (code, out) == (2, [])
    assert err == [f"{path}: {problem}"]


def test_comments_only_file_needs_rules(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A file holding only comments is empty too: rules are required."""
    path = tmp_path / "rules.yaml"
    path.write_text("# nothing configured yet\n\n# still nothing\n", encoding="utf-8")
    code, out, err = check(capsys, path)
    assert (code, out) == (2, [])
    assert err == [f"{path}: rules: required: a list with at least one entry (line 1)"]


def test_several_problems_all_reported(capsys: pytest.CaptureFixture[str]) -> None:
    """Every problem in a file is reported, one line each, in file order."""
    path = RULES / "many_problems.yaml"
    code, out, err = check(capsys, path)
    assert (code, out) == (2, [])
    assert err == [
        f"{path}: timezone: unknown IANA time zone 'Asia/Calcutta-ish' (line 2)",
        f"{path}: account 'kotak-main': broker: unknown broker 'kotak'; expected one of"
        f" {BROKERS} (line 5)",
        f"{path}: account 'samco-1': poll_every: {DURATION}; got '1 minute' (line 8)",
        f"{path}: rule 'desk-drawdown': threshold: must be a positive amount; got 0 (line 12)",
        f"{path}: rule 'fresh-short': severity: must be info, warning or critical; got 'urgent'"
        " (line 15)",
        f"{path}: rule 'desk-drawdown': name: duplicate of the rule on line 10 (line 16)",
        f"{path}: notify 'pager': kind: unknown sink kind 'pager'; expected one of"
        f" {', '.join(SINK_KINDS)} (line 19)",
        f"{path}: colour: unknown field; expected one of {TOP_LEVEL} (line 20)",
    ]


def test_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A file that does not exist is one ``cannot read`` line and exit 2."""
    path = tmp_path / "nope.yaml"
    code, out, err = check(capsys, path)
    assert (code, out) == (2, [])
    assert err == [f"{path}: cannot read: [Errno 2] No such file or directory: '{path}'"]


def test_timezone_naming_a_zone_directory(capsys: pytest.CaptureFixture[str]) -> None:
    """``timezone: Asia`` (a directory of the zone database) is a bad timezone, not a crash."""
    path = RULES / "timezone_directory.yaml"
    code, out, err = check(capsys, path)
    assert (code, out) == (2, [])
    assert err == [f"{path}: timezone: unknown IANA time zone 'Asia' (line 2)"]


def test_poll_every_too_large(capsys: pytest.CaptureFixture[str]) -> None:
    """An absurdly long poll_every is reported on its line, not a traceback."""
    path = RULES / "poll_every_overflow.yaml"
    code, out, err = check(capsys, path)
    assert (code, out) == (2, [])
    assert len(err) == 1
    assert err[0].startswith(f"{path}: account 'samco-1': poll_every: ")
    assert err[0].endswith("'99999999999999h' (line 4)")


def test_merge_key_override_is_not_a_duplicate(capsys: pytest.CaptureFixture[str]) -> None:
    """``<<: *anchor`` followed by an overriding key is valid YAML, not a duplicate key."""
    path = RULES / "merge_override.yaml"
    code, out, err = check(capsys, path)
    assert (code, err) == (0, [])
    assert out == [
        f"{path}: OK: no accounts (run uses the built-in simulator); "
        "2 rules (2 mtm_drawdown); sinks: console"
    ]


def test_empty_rules_key_names_its_line(capsys: pytest.CaptureFixture[str]) -> None:
    """``rules:`` with no value is reported on the line of the ``rules`` key."""
    path = RULES / "null_rules.yaml"
    code, out, err = check(capsys, path)
    assert (code, out) == (2, [])
    assert err == [f"{path}: rules: required: a list with at least one entry (line 4)"]


def test_empty_rule_entry_names_its_line(capsys: pytest.CaptureFixture[str]) -> None:
    """An empty ``-`` entry in rules is reported on its own line."""
    path = RULES / "null_rule_entry.yaml"
    code, out, err = check(capsys, path)
    assert (code, out) == (2, [])
    assert err == [f"{path}: rules[1]: must be a mapping (line 4)"]


def test_every_problem_of_one_entry_is_reported(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A bad kind does not hide a bad severity; a bad broker does not hide a bad poll_every."""
    path = tmp_path / "rules.yaml"
    path.write_text(
        "accounts:\n"
        "  - id: a1\n"
        "    broker: kotak\n"
        "    poll_every: soon\n"
        "rules:\n"
        "  - name: r1\n"
        "    kind: bogus\n"
        "    severity: loud\n"
    )
    code, out, err = check(capsys, path)
    assert (code, out) == (2, [])
    assert err == [
        f"{path}: account 'a1': broker: unknown broker 'kotak'; expected one of {BROKERS} (line 3)",
        f"{path}: account 'a1': poll_every: {DURATION}; got 'soon' (line 4)",
        f"{path}: rule 'r1': kind: unknown kind 'bogus'; expected one of {KINDS} (line 7)",
        f"{path}: rule 'r1': severity: must be info, warning or critical; got 'loud' (line 8)",
    ]


@pytest.mark.parametrize("zone", ["localtime", "Asia", "Mars/Olympus"])
def test_host_dependent_or_unknown_zones_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, zone: str
) -> None:
    """A trading day must not depend on the host: 'localtime' is refused like a typo."""
    path = tmp_path / "rules.yaml"
    path.write_text(f"timezone: {zone}\nrules:\n  - name: r\n    kind: new_short\n")
    code, _, err = check(capsys, path)
    assert code == 2
    assert err == [f"{path}: timezone: unknown IANA time zone '{zone}' (line 1)"]


def test_summary_uses_the_singular_for_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """One account and one rule read '1 account', '1 rule'."""
    path = tmp_path / "rules.yaml"
    path.write_text(
        "accounts:\n  - id: demo\n    broker: simulator\nrules:\n  - name: r\n    kind: new_short\n"
    )
    code, out, err = check(capsys, path)
    assert (code, err) == (0, [])
    assert out == [f"{path}: OK: 1 account; 1 rule (1 new_short); sinks: console"]


def test_a_literal_secret_is_refused_without_being_echoed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Credentials must be ${ENV_VAR} references; the error never repeats the value."""
    path = tmp_path / "rules.yaml"
    path.write_text(
        "accounts:\n"
        "  - id: k1\n"
        "    broker: kotak_neo\n"
        "    credentials:\n"
        '      access_token: "${KOTAK_ACCESS_TOKEN}"\n'
        "      mpin: 918273\n"
        "      totp_secret: JBSWY3DPEHPK3PXP\n"
        '      mobile_number: "${KOTAK_MOBILE_NUMBER}"\n'
        '      ucc: "${KOTAK_UCC}"\n'
        "rules:\n  - name: r\n    kind: new_short\n"
    )
    code, out, err = check(capsys, path)
    assert (code, out) == (2, [])
    reason = 'must be an environment reference such as "${KOTAK_ACCESS_TOKEN}"'
    assert err == [
        f"{path}: account 'k1': credentials.mpin: {reason} (line 6)",
        f"{path}: account 'k1': credentials.totp_secret: {reason} (line 7)",
    ]
    assert "918273" not in "".join(err)
    assert "JBSWY3DPEHPK3PXP" not in "".join(err)


def test_http_timeouts_are_read_and_refused_where_nothing_is_fetched(tmp_path: Path) -> None:
    """timeout and connect_timeout land on a live account; the simulator refuses them."""
    path = tmp_path / "rules.yaml"
    path.write_text(
        "accounts:\n"
        "  - id: t1\n    broker: torus\n    poll_every: 5s\n    timeout: 3s\n"
        '    connect_timeout: 500ms\n    credentials: {token: "${TORUS_TOKEN}"}\n'
        "  - id: sim\n    broker: simulator\n    connect_timeout: 1s\n"
        "rules:\n  - name: r\n    kind: new_short\n"
    )
    with pytest.raises(config.ConfigError) as info:
        config.load(path)
    assert info.value.problems == [
        f"{path}: account 'sim': connect_timeout: simulator is not polled over HTTP (line 10)"
    ]
    path.write_text(path.read_text().replace("    connect_timeout: 1s\n", ""))
    torus = config.load(path).accounts[0]
    assert (torus.request_timeout, torus.connect_timeout) == (
        timedelta(seconds=3),
        timedelta(milliseconds=500),
    )
    assert torus.base_url == "https://connects.torusdigital.com"


def test_credentials_resolve_from_the_environment_and_refuse_control_characters(
    tmp_path: Path,
) -> None:
    """Values come from the environment; an unset or broken one is named, never shown."""
    path = tmp_path / "rules.yaml"
    path.write_text(
        "accounts:\n  - id: t1\n    broker: torus\n"
        '    credentials: {token: "${PM_TORUS_TOKEN}"}\n'
        "rules:\n  - name: r\n    kind: new_short\n"
    )
    loaded = config.load(path)
    account = loaded.accounts[0]
    assert config.resolve_credentials(loaded, account, {"PM_TORUS_TOKEN": "abc-123"}) == {
        "token": "abc-123"
    }
    for environ, reason in [
        ({}, "environment variable PM_TORUS_TOKEN is not set"),
        (
            {"PM_TORUS_TOKEN": "abc-123\n"},
            "PM_TORUS_TOKEN contains a control character (a line break?)",
        ),
    ]:
        with pytest.raises(config.ConfigError) as info:
            config.resolve_credentials(loaded, account, environ)
        assert info.value.problems == [f"{path}: account 't1': credentials.token: {reason}"]
        assert "abc-123" not in str(info.value)


def test_windows_holidays_and_alert_after(tmp_path: Path) -> None:
    """Presets, a custom window, per-broker defaults, the old holidays list; bad values named
    by line."""
    path = tmp_path / "rules.yaml"
    path.write_text(
        "holidays: [2026-01-26, 2026-03-06]\n"
        "accounts:\n"
        "  - id: sim\n    broker: simulator\n"
        '  - id: t1\n    broker: torus\n    credentials: {token: "${T}"}\n'
        '  - id: t2\n    broker: torus\n    credentials: {token: "${T}"}\n    window: mcx\n'
        '  - id: t3\n    broker: torus\n    credentials: {token: "${T}"}\n'
        '    window: {days: sat-sun, start: "10:00", end: "14:00"}\n    alert_after: 2m\n'
        "rules:\n  - name: r\n    kind: new_short\n"
    )
    loaded = config.load(path)
    sim, t1, t2, t3 = loaded.accounts
    hours = [replace(a.window, calendar=NO_CALENDAR) for a in (sim, t1, t2)]
    assert hours == [ALWAYS, PRESETS["nse"], PRESETS["mcx"]]
    assert (t1.window.calendar.name, t2.window.calendar.name) == ("nse", "mcx")
    listed = frozenset({date(2026, 1, 26), date(2026, 3, 6)})
    assert listed <= t1.window.calendar.closed and listed <= t2.window.calendar.closed
    assert t3.window == Window(
        frozenset({5, 6}), time(10), time(14), calendar=Calendar(closed=listed)
    )
    assert (t1.failing_after, t3.failing_after) == (timedelta(minutes=1), timedelta(minutes=2))

    path.write_text(
        "holidays: [26-01-2026]\n"
        "accounts:\n"
        '  - id: t1\n    broker: torus\n    credentials: {token: "${T}"}\n    window: nyse\n'
        '  - id: t2\n    broker: torus\n    credentials: {token: "${T}"}\n'
        "    window: {days: mon-fri, start: 9:15, end: 15:30}\n"
        "rules:\n  - name: r\n    kind: new_short\n"
    )
    with pytest.raises(config.ConfigError) as info:
        config.load(path)
    assert info.value.problems == [
        f"{path}: holidays[0]: must be a date such as 2026-01-26; got '26-01-2026' (line 1)",
        f"{path}: account 't1': window: unknown preset 'nyse'; expected nse, mcx, always or"
        " {days, start, end} (line 6)",
        f"{path}: account 't2': window: must be a time such as 09:15; got 555"
        ' (quote times: "09:15") (line 10)',
    ]


def test_durations_share_the_bot_commands_grammar(tmp_path: Path) -> None:
    """poll_every takes ``1d`` as /mute does; a bare number, seconds or minutes, is refused."""
    path = tmp_path / "rules.yaml"
    path.write_text(
        "accounts:\n  - id: sim\n    broker: simulator\n    poll_every: 1d\n"
        "rules:\n  - name: r\n    kind: new_short\n"
    )
    assert config.load(path).accounts[0].poll_every == timedelta(days=1)
    path.write_text(path.read_text().replace("1d", "5"))
    with pytest.raises(config.ConfigError) as info:
        config.load(path)
    assert info.value.problems == [f"{path}: account 'sim': poll_every: {DURATION}; got 5 (line 4)"]


@pytest.mark.parametrize(
    "module",
    [
        "monitor.notify.console",
        "monitor.notify.telegram.config",
        "monitor.notify.kind",
        "monitor.notify.registry",
        "monitor.config",
    ],
)
def test_each_sink_reader_imports_first(module: str) -> None:
    """The sink readers and the config package import each other's modules: any may be the
    first a process imports."""
    run = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("port", ["\u00b2", "\u0663\u0660\u0660\u0660", "\uff19\uff16\uff15\uff10"])
def test_a_listen_port_in_digits_other_than_ascii_is_refused_with_the_reason(port: str) -> None:
    # str.isdigit() takes these; int() reads some of them as a port and refuses the others.
    with pytest.raises(ValueError, match="a port from 0 \\(any free\\) to 65535"):
        config.parse_listen(f"0.0.0.0:{port}")


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ("notify: [{kind: webhook, url: 'https://desk:hunter2-pw@hooks.example/in'}]", "url"),
        ("notify: [{kind: alertmanager, url: 'http://pm:hunter2-pw@am:9093'}]", "url"),
        (
            "notify: [{kind: telegram, bot_token: '${PM_BOT}', api_url: 'https://u:hunter2-pw@t.example',"
            " chats: [{chat_id: '1'}]}]",
            "api_url",
        ),
        (
            "accounts: [{id: pf, broker: portfolio, base_url: 'https://u:hunter2-pw@api.example',"
            " credentials: {token: '${PM_PF}'}}]",
            "base_url",
        ),
    ],
)
def test_a_url_carrying_a_password_is_refused_without_repeating_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, entry: str, field: str
) -> None:
    """rules.yaml holds no secret: a user and password written into a URL are refused, and the
    problem line does not repeat them."""
    path = tmp_path / "rules.yaml"
    path.write_text(f"rules: [{{name: r, kind: new_short}}]\n{entry}\n")
    code, out, err = check(capsys, path)
    assert code == 2 and out == []
    assert [line for line in err if f": {field}: " in line], err
    assert not any("hunter2-pw" in line for line in err)
