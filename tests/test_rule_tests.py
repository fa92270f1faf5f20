"""``position-monitor test``: rule tests through the daemon's engine, their diffs and exit codes
(README "Testing your rules")."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.cli import main
from monitor.model import Severity
from monitor.rule_tests.cases import Expected
from monitor.rule_tests.matching import differences, mismatches
from monitor.rules.base import PositionFilter
from monitor.rules.new_short import NewShort
from tests.snapshots import T0, change, poll, pos, snap

ROOT = Path(__file__).parent.parent

RULES = """\
rules:
  - name: desk-drawdown
    kind: mtm_drawdown
    threshold: 5000
    severity: critical
  - name: fresh-short
    kind: new_short
    segments: [nse_fo]
  - name: closed
    kind: squared_off
"""

# The example of the rule test contract, comments included.
EXAMPLE = """\
rules: rules.yaml               # path relative to this file; its accounts and notify are ignored
tests:
  - name: a fresh short is reported once
    account: k1                 # default "test"
    broker: generic             # default; or a broker id, whose polls then carry `body` (+ `quotes`)
    timezone: Asia/Kolkata      # default: the rules file's, else the broker's
    interval: 5s                # a poll without `at` comes this long after the one before
    polls:
      - at: "2026-11-23T09:20:00+05:30"    # the first poll needs `at`
        positions:              # broker generic: segment, token, product (default ""),
          - {segment: nse_fo, token: "53179", product: NRML, symbol: BANKNIFTY25DECFUT, net_qty: 25, mtm: 0}
      - positions:              # symbol defaults to token; mtm may be null (unknown) or absent
          - {segment: nse_fo, token: "53179", product: NRML, symbol: BANKNIFTY25DECFUT, net_qty: -25, mtm: -1200}
      - error: timeout          # a failed poll
    expect:                     # exactly these alerts, in order (within a poll: rules in file
                                # order, then rows in answer order); the fields given must match,
      - {at: "2026-11-23T09:20:05+05:30", rule: fresh-short, symbol: BANKNIFTY25DECFUT}
                                # `details` as a subset; an empty list expects no alert at all
"""  # noqa: E501 - as the contract writes it


def write(tmp_path: Path, tests: str, rules: str = RULES) -> Path:
    """A rules file and a test file beside it; the test file's path."""
    (tmp_path / "rules.yaml").write_text(rules, encoding="utf-8")
    path = tmp_path / "rules_test.yaml"
    path.write_text(tests, encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *paths: Path) -> tuple[int, list[str], list[str]]:
    """``position-monitor test PATHS``: the exit code and the stdout and stderr lines."""
    code = main(["test", *map(str, paths)])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def test_the_contract_example_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The example test passes: one ok line and the count."""
    code, out, err = run(capsys, write(tmp_path, EXAMPLE))
    assert (code, out, err) == (
        0,
        ["ok   a fresh short is reported once", "1 test: 1 passed, 0 failed"],
        [],
    )


def test_a_wrong_expectation_fails_naming_the_test(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong symbol fails the test: FAIL with its name and line, both alert lists, and the
    field that differs; the other test of the file still passes."""
    wrong = EXAMPLE.replace("symbol: BANKNIFTY25DECFUT}", "symbol: NIFTY25DECFUT}")
    wrong = wrong.replace("a fresh short is reported once", "short named wrongly")
    path = write(tmp_path, wrong + EXAMPLE.split("tests:\n", 1)[1])
    code, out, err = run(capsys, path)
    assert (code, err) == (1, [])
    assert out[0] == f"FAIL short named wrongly ({path}:3)"
    assert out[1:3] == [
        "  expected (1):",
        '    #1 (line 17) {"at": "2026-11-23T09:20:05+05:30", "rule": "fresh-short", '
        '"symbol": "NIFTY25DECFUT"}',
    ]
    assert out[3] == "  produced (1):"
    produced = json.loads(out[4].removeprefix("    #1 "))
    assert (produced["rule"], produced["symbol"], produced["account"]) == (
        "fresh-short",
        "BANKNIFTY25DECFUT",
        "k1",
    )
    assert out[5:] == [
        "  differences:",
        '    expected #1 (line 17) vs produced #1: symbol: expected "NIFTY25DECFUT", '
        'got "BANKNIFTY25DECFUT"',
        "ok   a fresh short is reported once",
        "2 tests: 1 passed, 1 failed",
    ]


def test_an_alert_missing_and_an_alert_unexpected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Expecting no alert where one comes, and one where none comes: each test says which."""
    path = write(
        tmp_path,
        textwrap.dedent("""\
            rules: rules.yaml
            tests:
              - name: quiet expected
                polls:
                  - {at: "2026-11-23T09:20:00+05:30", positions: [{segment: nse_fo, token: "1", net_qty: 5, mtm: 0}]}
                  - {at: "2026-11-23T09:21:00+05:30", positions: [{segment: nse_fo, token: "1", net_qty: -5, mtm: 0}]}
                expect: []
              - name: close expected
                polls:
                  - {at: "2026-11-23T09:20:00+05:30", positions: [{segment: nse_fo, token: "1", net_qty: 5, mtm: 0}]}
                expect:
                  - {rule: closed}
            """),  # noqa: E501
    )
    code, out, err = run(capsys, path)
    assert (code, err) == (1, [])
    assert out[0] == f"FAIL quiet expected ({path}:3)"
    assert "    produced #1 (fresh-short): not expected" in out
    assert out.index(f"FAIL close expected ({path}:8)") > 0
    assert "    expected #1 (line 12): no alert produced for it" in out
    assert out[-1] == "2 tests: 0 passed, 2 failed"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("rules: rules.yaml\ntests: [\n", "3: invalid YAML: expected the node content"),
        ("- a\n", "1: top level: must be a mapping with rules and tests"),
        ("tests: []\n", "1: rules: required: the path of the rules file, relative to this file"),
        ("rules: missing.yaml\ntests: []\n", "1: rules: no such file: "),
        ("rules: rules.yaml\ntests: []\n", "2: tests: required: a list of tests"),
        ("rules: rules.yaml\nrule: x\ntests: [{}]\n", "2: rule: unknown field; expected rules"),
        (
            "rules: rules.yaml\ntests:\n  - name: t\n    polls: [{positions: []}]\n"
            "    expect: []\n",
            "4: test 't': polls[0]: at: required on the first poll",
        ),
        (
            "rules: rules.yaml\ntests:\n  - name: t\n    polls:\n"
            "      - {at: '2026-11-23T09:20:00+05:30', positions: []}\n"
            "      - {positions: []}\n    expect: []\n",
            "6: test 't': polls[1]: at: required: the test sets no interval",
        ),
        (
            "rules: rules.yaml\ntests:\n  - name: t\n    polls:\n"
            "      - at: '2026-11-23T09:20:00'\n        positions: []\n    expect: []\n",
            "5: test 't': polls[0]: at: must be an ISO 8601 time with a UTC offset",
        ),
        (
            "rules: rules.yaml\ntests:\n  - name: t\n    polls:\n"
            "      - at: '2026-11-23T09:20:00+05:30'\n"
            "        positions:\n          - {segment: nse_fo, token: '1', net_qty: lots}\n"
            "    expect: []\n",
            "7: test 't': polls[0]: positions[0]: net_qty: must be a number; got 'lots'",
        ),
        (
            "rules: rules.yaml\ntests:\n  - name: t\n    polls:\n"
            "      - at: '2026-11-23T09:20:00+05:30'\n"
            "        positions: []\n        error: timeout\n    expect: []\n",
            "5: test 't': polls[0]: needs positions (a good poll, maybe []) or error",
        ),
        (
            "rules: rules.yaml\ntests:\n  - name: t\n    broker: zerodha\n"
            "    polls: [{at: '2026-11-23T09:20:00+05:30', positions: []}]\n    expect: []\n",
            "4: test 't': broker: unknown broker 'zerodha'; expected one of generic, kotak_neo",
        ),
        (
            "rules: rules.yaml\ntests:\n  - name: t\n"
            "    polls: [{at: '2026-11-23T09:20:00+05:30', positions: []}]\n",
            "3: test 't': expect: required: the alerts expected, in order ([] for none)",
        ),
        (
            "rules: rules.yaml\ntests:\n  - name: t\n    interval: 5\n"
            "    polls: [{at: '2026-11-23T09:20:00+05:30', positions: []}]\n    expect: []\n",
            "4: test 't': interval: must be a duration like 5s, 500ms or 1m; got 5",
        ),
    ],
)
def test_a_bad_test_file_exits_2_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, problem: str
) -> None:
    """A malformed test file runs nothing: one ``FILE:LINE: reason`` line per problem."""
    path = write(tmp_path, text)
    code, out, err = run(capsys, path)
    assert (code, out) == (2, [])
    assert err[0].startswith(f"{path}:{problem}")
    assert all(line.startswith(f"{path}:") for line in err)


def test_a_bad_rules_file_gives_its_own_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The rules file named is checked as ``check`` checks it: its file, rule, field, line."""
    path = write(tmp_path, EXAMPLE, rules="rules:\n  - name: dd\n    kind: mtm_drawdown\n")
    code, out, err = run(capsys, path)
    assert (code, out) == (2, [])
    assert err == [f"{tmp_path / 'rules.yaml'}: rule 'dd': threshold: required for kind "
                   "mtm_drawdown (line 2)"]  # fmt: skip


def test_one_bad_file_of_several_runs_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every file is checked before any test runs."""
    good = write(tmp_path, EXAMPLE)
    bad = tmp_path / "bad_test.yaml"
    bad.write_text("rules: rules.yaml\ntests: []\n", encoding="utf-8")
    code, out, err = run(capsys, good, bad)
    assert (code, out) == (2, [])
    assert err == [f"{bad}:2: tests: required: a list of tests"]


def kotak_row(
    symbol: str, token: str, segment: str, buy: str, sell: str, **amounts: str
) -> dict[str, str]:
    """A Kotak Neo positions row with the documented fields; unset amounts are 0.00."""
    return {
        "exSeg": segment, "tok": token, "prod": "NRML", "trdSym": symbol,
        "flBuyQty": buy, "flSellQty": sell, "cfBuyQty": "0", "cfSellQty": "0",
        "buyAmt": amounts.get("buyAmt", "0.00"), "sellAmt": amounts.get("sellAmt", "0.00"),
        "cfBuyAmt": "0.00", "cfSellAmt": "0.00",
        "multiplier": "1", "genNum": "1", "genDen": "1", "prcNum": "1", "prcDen": "1",
    }  # fmt: skip


def test_a_broker_body_with_quotes_goes_through_the_real_parser(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Kotak Neo bodies, priced from each poll's ``quotes``: the short is sold at 45,012.50,
    quoted 45,250.00 ten minutes later, a drawdown of 5,937.50; a 500 in between is a failed
    poll. Times match by instant: 03:50:05Z is 09:20:05 in Asia/Kolkata."""
    short = kotak_row("BANKNIFTY21JULFUT", "53179", "nse_fo", "0", "25", sellAmt="1125312.50")
    body = {"stat": "Ok", "stCode": 200, "data": [short]}
    polls = [
        {"at": "2026-11-23T09:15:00+05:30", "body": {"stat": "Ok", "stCode": 200, "data": []}},
        {"at": "2026-11-23T03:50:05Z", "body": body, "quotes": {"nse_fo:53179": "45012.50"}},
        {"at": "2026-11-23T09:25:00+05:30", "status": 500, "body": "<html>busy</html>"},
        {"at": "2026-11-23T09:30:00+05:30", "body": body, "quotes": {"nse_fo:53179": "45250.00"}},
    ]
    test = {
        "rules": "rules.yaml",
        "tests": [
            {
                "name": "kotak short and drawdown",
                "account": "kotak-main",
                "broker": "kotak_neo",
                "polls": polls,
                "expect": [
                    {
                        "rule": "fresh-short",
                        "at": "2026-11-23T09:20:05+05:30",
                        "symbol": "BANKNIFTY21JULFUT",
                        "details": {"net_qty": -25},
                    },
                    {
                        "rule": "desk-drawdown",
                        "at": "2026-11-23T04:00:00Z",
                        "symbol": None,
                        "details": {"mtm": "-5937.50", "drawdown": 5937.5},
                    },
                ],
            }
        ],
    }
    path = write(tmp_path, json.dumps(test, indent=1))  # JSON is YAML
    code, out, err = run(capsys, path)
    assert (code, out, err) == (
        0,
        ["ok   kotak short and drawdown", "1 test: 1 passed, 0 failed"],
        [],
    )


def test_a_failed_poll_in_the_middle_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Long 25, a timeout, then short 25: the short is diffed against the long before the
    failure (net_qty_before 25), at the poll two intervals after the first."""
    path = write(
        tmp_path,
        textwrap.dedent("""\
            rules: rules.yaml
            tests:
              - name: flip across a timeout
                interval: 1m
                polls:
                  - at: 2026-11-23T09:20:00+05:30
                    positions: [{segment: nse_fo, token: 53179, net_qty: 25}]
                  - error: timeout
                  - positions: [{segment: nse_fo, token: 53179, net_qty: -25}]
                expect:
                  - rule: fresh-short
                    at: 2026-11-23T09:22:00+05:30
                    token: "53179"
                    symbol: "53179"
                    product: ""
                    details: {net_qty_before: 25, net_qty: -25}
            """),
    )
    code, out, err = run(capsys, path)
    assert (code, out, err) == (0, ["ok   flip across a timeout", "1 test: 1 passed, 0 failed"], [])


def test_the_bundled_rules_tests_pass(capsys: pytest.CaptureFixture[str]) -> None:
    """rules_test.yaml beside the bundled rules.yaml covers every rule in it, and passes."""
    code, out, err = run(capsys, ROOT / "rules_test.yaml")
    assert (code, err) == (0, [])
    assert out[-1].endswith(" passed, 0 failed")
    tested = {
        expected["rule"]
        for test in _yaml(ROOT / "rules_test.yaml")["tests"]
        for expected in test["expect"]
    }
    bundled = {rule["name"] for rule in _yaml(ROOT / "rules.yaml")["rules"]}
    assert bundled <= tested


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# Matching, on plain data


def test_fields_match_by_value_time_and_subset() -> None:
    """Numbers by value, times by instant, details as a subset; any alert field can be named
    (a ``state`` among them)."""
    produced = {
        "rule": "dd",
        "token": "53179",
        "at": "2026-11-23T09:30:00+05:30",
        "state": "resolved",
        "details": {"mtm": -5937.5, "peak": 0, "drawdown": 5937.5},
    }
    assert mismatches({}, produced) == []
    assert mismatches({"token": 53179, "details": {"mtm": "-5937.50", "peak": 0.0}}, produced) == []
    assert mismatches({"at": "2026-11-23T04:00:00+00:00", "state": "resolved"}, produced) == []
    assert mismatches({"at": datetime.fromisoformat("2026-11-23T04:00:00+00:00")}, produced) == []
    assert mismatches(
        {"at": "2026-11-23T09:30:00", "state": "firing", "details": {"peak": 1, "since": "x"}},
        produced,
    ) == [
        'at: expected "2026-11-23T09:30:00", got "2026-11-23T09:30:00+05:30"',
        'state: expected "firing", got "resolved"',
        "details.peak: expected 1, got 0",
        "details.since: the alert has no such field",
    ]


def test_null_true_and_zero_are_not_confused() -> None:
    """None matches only null, booleans only booleans: false is not 0."""
    produced = {"symbol": None, "row_removed": False, "net_qty": 0}
    assert mismatches({"symbol": None, "row_removed": False, "net_qty": 0}, produced) == []
    assert mismatches({"symbol": "", "row_removed": 0, "net_qty": False}, produced) == [
        'symbol: expected "", got null',
        "row_removed: expected 0, got false",
        "net_qty: expected false, got 0",
    ]


def test_differences_need_exactly_the_expected_alerts_in_order() -> None:
    """Same alerts in another order, one more, one fewer: each a difference; in order, none."""
    a0, a1 = pos("a", 0), pos("a", -1)
    b0, b1 = pos("b", 0), pos("b", -2)
    rule = NewShort("s", Severity.WARNING, PositionFilter())
    _, alerts = rule.evaluate(None, poll(snap(a1, b1), change(a0, a1), change(b0, b1)))
    first, second = Expected(1, {"token": "a"}), Expected(2, {"token": "b", "at": T0})
    assert differences([first, second], alerts) == []
    assert differences([second, first], alerts) == [
        "expected #1 (line 2): no alert produced for it",
        "produced #2 (s): not expected",
    ]
    assert differences([first], alerts) == ["produced #2 (s): not expected"]
    assert differences([first, second, first], alerts) == [
        "expected #3 (line 1): no alert produced for it"
    ]
    assert differences([], []) == []
