"""``position-monitor replay``: recorded polls through diff, rules and store.

The file format and the alert JSON are README's "Replay files" and "Alert JSON".

The sessions live in tests/fixtures/replay/*.jsonl and run against
tests/fixtures/rules/replay.yaml: an account-scope drawdown (threshold 5000, critical),
``fresh-short`` (new_short, warning) and ``closed`` (squared_off, info). That file sets no
top-level timezone, so each broker's own trading day applies.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.rules.registry import RULE_KINDS

FIXTURES = Path(__file__).parent / "fixtures"
REPLAY = FIXTURES / "replay"
RULES = FIXTURES / "rules" / "replay.yaml"
KOTAK = {"account": "kotak-main", "exchange_segment": "nse_fo", "token": "53179"}

NEW_SHORT_0920 = {
    "rule": "fresh-short",
    "kind": "new_short",
    "severity": "warning",
    "state": "firing",
    **KOTAK,
    "product": "NRML",
    "symbol": "BANKNIFTY21JULFUT",
    "at": "2026-11-23T09:20:05+05:30",
    "message": "New short BANKNIFTY21JULFUT (nse_fo NRML): net qty 0 -> -25",
    "details": {"net_qty_before": 0, "net_qty": -25},
}


def replay(
    capsys: pytest.CaptureFixture[str], name: str, *, rules: Path = RULES, output: str = "jsonl"
) -> tuple[int, list[str], list[str]]:
    """Replay a fixture in-process; return the exit code and the stdout/stderr lines."""
    code = main(["replay", str(REPLAY / name), "--rules", str(rules), "--output", output])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def with_timezone(tmp_path: Path, zone: str) -> Path:
    """The replay rules with a top-level ``timezone`` added, written under tmp_path."""
    path = tmp_path / "rules.yaml"
    path.write_text(f"timezone: {zone}\n{RULES.read_text(encoding='utf-8')}", encoding="utf-8")
    return path


def test_kotak_session_jsonl(capsys: pytest.CaptureFixture[str]) -> None:
    """Baseline, new short, drawdown priced from ``quotes``, square-off: exactly three alerts."""
    code, out, err = replay(capsys, "kotak_session.jsonl")
    assert (code, err) == (0, [])
    assert [json.loads(line) for line in out] == [
        NEW_SHORT_0920,
        {
            "rule": "desk-drawdown",
            "kind": "mtm_drawdown",
            "severity": "critical",
            "state": "firing",
            "account": "kotak-main",
            "exchange_segment": None,
            "token": None,
            "product": None,
            "symbol": None,
            "at": "2026-11-23T09:30:00+05:30",
            "message": "MTM drawdown on account kotak-main: 5,937.50 below the day's peak 0.00 "
            "(MTM -5,937.50, threshold 5,000.00)",
            "details": {"mtm": -5937.5, "peak": 0, "drawdown": 5937.5},
        },
        {
            "rule": "closed",
            "kind": "squared_off",
            "severity": "info",
            "state": "firing",
            **KOTAK,
            "product": "NRML",
            "symbol": "BANKNIFTY21JULFUT",
            "at": "2026-11-23T09:45:00+05:30",
            "message": "Squared off BANKNIFTY21JULFUT (nse_fo NRML): was -25, net qty 0",
            "details": {"net_qty_before": -25, "net_qty": 0, "row_removed": False},
        },
    ]


def test_jsonl_keys_in_contract_order(capsys: pytest.CaptureFixture[str]) -> None:
    """Each jsonl line is one object whose keys are exactly the contract's, in its order."""
    _, out, _ = replay(capsys, "kotak_session.jsonl")
    assert len(out) == 3
    for line in out:
        assert list(json.loads(line)) == [
            "rule", "kind", "severity", "state", "account", "exchange_segment", "token", "product",
            "symbol", "at", "message", "details",
        ]  # fmt: skip


def test_kotak_session_text(capsys: pytest.CaptureFixture[str]) -> None:
    """Text output prints one line per alert: time, severity, rule, account, message."""
    code, out, err = replay(capsys, "kotak_session.jsonl", output="text")
    assert (code, err) == (0, [])
    assert out == [
        "2026-11-23T09:20:05+05:30 WARNING  fresh-short [kotak-main] "
        "New short BANKNIFTY21JULFUT (nse_fo NRML): net qty 0 -> -25",
        "2026-11-23T09:30:00+05:30 CRITICAL desk-drawdown [kotak-main] "
        "MTM drawdown on account kotak-main: 5,937.50 below the day's peak 0.00 "
        "(MTM -5,937.50, threshold 5,000.00)",
        "2026-11-23T09:45:00+05:30 INFO     closed [kotak-main] "
        "Squared off BANKNIFTY21JULFUT (nse_fo NRML): was -25, net qty 0",
    ]


def test_failed_polls_keep_the_baseline(capsys: pytest.CaptureFixture[str]) -> None:
    """Invariant 1: failed lines raise nothing and are named; the next good poll diffs line 1.

    Lines 2-6 are a 500, a timeout, an HTML body, a body without ``data`` and a row missing
    fields; line 7 has the short squared off (fires once, against line 1), line 8 repeats 7.
    """
    code, out, err = replay(capsys, "failed_polls.jsonl")
    path = REPLAY / "failed_polls.jsonl"
    failed = "account kotak-main: poll failed: kotak_neo:"
    assert code == 0
    assert err == [
        f"{path}:2: {failed} HTTP 500: broker unavailable",
        f"{path}:3: {failed} transport error: timeout",
        f"{path}:4: {failed} body: not valid JSON (JSON is malformed: invalid character (byte 0))",
        f"{path}:5: {failed} data: missing from a stat Ok response",
        f"{path}:6: {failed} data[0]: Object missing required field `prod`",
    ]
    assert [json.loads(line) for line in out] == [
        {
            "rule": "closed",
            "kind": "squared_off",
            "severity": "info",
            "state": "firing",
            **KOTAK,
            "product": "NRML",
            "symbol": "BANKNIFTY21JULFUT",
            "at": "2026-11-23T10:00:30+05:30",
            "message": "Squared off BANKNIFTY21JULFUT (nse_fo NRML): was -25, net qty 0",
            "details": {"net_qty_before": -25, "net_qty": 0, "row_removed": False},
        }
    ]


def test_invalid_json_line_stops_replay(capsys: pytest.CaptureFixture[str]) -> None:
    """Invalid JSON on line 3: FILE:3 on stderr, exit 2, line 2's alert printed, line 4's not."""
    code, out, err = replay(capsys, "invalid_json.jsonl")
    assert code == 2
    assert [json.loads(line) for line in out] == [NEW_SHORT_0920]
    assert len(err) == 1
    assert err[0].startswith(f"{REPLAY / 'invalid_json.jsonl'}:3: not valid JSON (")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        pytest.param("missing_at.jsonl", "at: required, a non-empty string", id="missing-at"),
        pytest.param(
            "unknown_broker.jsonl",
            "broker: unknown broker 'zerodha'; expected one of "
            "kotak_neo, portfolio, samco, alphapoint, torus",
            id="unknown-broker",
        ),
        pytest.param(
            "naive_at.jsonl",
            "at: needs a UTC offset, such as +05:30: '2026-11-23T09:20:05'",
            id="naive-at",
        ),
    ],
)
def test_bad_line_stops_replay(capsys: pytest.CaptureFixture[str], name: str, reason: str) -> None:
    """A bad line 2 is ``FILE:2: reason``, exit 2; line 3 (a new short) is never replayed."""
    code, out, err = replay(capsys, name)
    assert (code, out) == (2, [])
    assert err == [f"{REPLAY / name}:2: {reason}"]


def test_bad_rules_file_stops_replay(capsys: pytest.CaptureFixture[str]) -> None:
    """An invalid --rules file is reported like ``check`` does, exit 2, before any line runs."""
    rules = FIXTURES / "rules" / "unknown_kind.yaml"
    code, out, err = replay(capsys, "kotak_session.jsonl", rules=rules)
    assert (code, out) == (2, [])
    assert err == [
        f"{rules}: rule 'fresh-short': kind: unknown kind 'new_shorts'; "
        f"expected one of {', '.join(RULE_KINDS)} (line 6)"
    ]


def test_portfolio_account_drawdown_fires_once(capsys: pytest.CaptureFixture[str]) -> None:
    """Account MTM 1500, 3500, -1500, -2500, 1000, -2000: fires once at drawdown 5000.

    It stays quiet while the drawdown stays at or above the threshold, and at exactly half the
    threshold (2500) it does not re-arm, so the second fall raises nothing.
    """
    code, out, err = replay(capsys, "portfolio_drawdown.jsonl")
    assert (code, err) == (0, [])
    assert [json.loads(line) for line in out] == [
        {
            "rule": "desk-drawdown",
            "kind": "mtm_drawdown",
            "severity": "critical",
            "state": "firing",
            "account": "pf-desk",
            "exchange_segment": None,
            "token": None,
            "product": None,
            "symbol": None,
            "at": "2026-11-23T09:45:00+05:30",
            "message": "MTM drawdown on account pf-desk: 5,000.00 below the day's peak 3,500.00 "
            "(MTM -1,500.00, threshold 5,000.00)",
            "details": {"mtm": -1500, "peak": 3500, "drawdown": 5000},
        }
    ]


def test_samco_ist_midnight_is_not_a_square_off(capsys: pytest.CaptureFixture[str]) -> None:
    """Crossing IST midnight (18:30 UTC): the vanished row and the MTM drop are silent; the row
    still reported but now flat is a square-off."""
    code, out, err = replay(capsys, "samco_midnight.jsonl")
    assert (code, err) == (0, [])
    assert [(a["rule"], a["symbol"], a["at"], a["details"]) for a in map(json.loads, out)] == [
        (
            "closed",
            "NIFTY25DECFUT",
            "2026-11-23T18:35:00+00:00",
            {"net_qty_before": 75, "net_qty": 0, "row_removed": False},
        )
    ]


def test_samco_midnight_in_utc_is_the_same_day(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Control: with ``timezone: UTC`` the same polls are one trading day, so everything fires.

    The rows missing at 18:35 are carried (their MTM still counts in the drawdown) and squared
    off at 18:40, whose empty answer still lacks them.
    """
    code, out, err = replay(capsys, "samco_midnight.jsonl", rules=with_timezone(tmp_path, "UTC"))
    assert (code, err) == (0, [])
    alerts = [json.loads(line) for line in out]
    assert [(a["rule"], a["symbol"], a["at"], a["details"]) for a in alerts] == [
        (
            "desk-drawdown",
            None,
            "2026-11-23T18:35:00+00:00",
            {"mtm": 1067.3, "peak": 7167.8, "drawdown": 6100.5},
        ),
        (
            "closed",
            "NIFTY25DECFUT",
            "2026-11-23T18:35:00+00:00",
            {"net_qty_before": 75, "net_qty": 0, "row_removed": False},
        ),
        (
            "closed",
            "RELIANCE",
            "2026-11-23T18:40:00+00:00",
            {"net_qty_before": 18, "net_qty": 0, "row_removed": True},
        ),
        (
            "closed",
            "SBIN",
            "2026-11-23T18:40:00+00:00",
            {"net_qty_before": -50, "net_qty": 0, "row_removed": True},
        ),
    ]


def test_alphapoint_utc_midnight_resets_peak(capsys: pytest.CaptureFixture[str]) -> None:
    """AlphaPoint's day starts at UTC midnight: MTM 61000, then 56000, 52000, 51000 after it.

    The first poll after midnight sets the new peak (56000), so only the fall to 51000 fires.
    """
    code, out, err = replay(capsys, "alphapoint_utc_midnight.jsonl")
    assert (code, err) == (0, [])
    assert [json.loads(line) for line in out] == [
        {
            "rule": "desk-drawdown",
            "kind": "mtm_drawdown",
            "severity": "critical",
            "state": "firing",
            "account": "ap-4",
            "exchange_segment": None,
            "token": None,
            "product": None,
            "symbol": None,
            "at": "2026-11-24T05:45:00+05:30",
            "message": "MTM drawdown on account ap-4: 5,000.00 below the day's peak 56,000.00 "
            "(MTM 51,000.00, threshold 5,000.00)",
            "details": {"mtm": 51000, "peak": 56000, "drawdown": 5000},
        }
    ]


def test_alphapoint_with_ist_timezone_keeps_peak(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Control: a top-level ``timezone: Asia/Kolkata`` overrides UTC, so the old peak holds."""
    rules = with_timezone(tmp_path, "Asia/Kolkata")
    code, out, err = replay(capsys, "alphapoint_utc_midnight.jsonl", rules=rules)
    assert (code, err) == (0, [])
    alerts = [json.loads(line) for line in out]
    assert [(a["at"], a["details"]) for a in alerts] == [
        (
            "2026-11-24T05:35:00+05:30",
            {"mtm": 56000, "peak": 61000, "drawdown": 5000},
        )
    ]


def test_vanished_row_same_day_is_squared_off(capsys: pytest.CaptureFixture[str]) -> None:
    """A Torus row missing from two good polls of the same day (10:00, 10:05) fires once, at
    the second, with row_removed."""
    code, out, err = replay(capsys, "torus_vanished.jsonl")
    assert (code, err) == (0, [])
    assert [json.loads(line) for line in out] == [
        {
            "rule": "closed",
            "kind": "squared_off",
            "severity": "info",
            "state": "firing",
            "account": "torus-1",
            "exchange_segment": "NSE_E",
            "token": "1594",
            "product": "I",
            "symbol": "INFY",
            "at": "2026-11-23T10:05:00+05:30",
            "message": "Squared off INFY (NSE_E I): was 10, position no longer reported",
            "details": {"net_qty_before": 10, "net_qty": 0, "row_removed": True},
        }
    ]


def test_body_numbers_keep_full_precision(capsys: pytest.CaptureFixture[str]) -> None:
    """ETH 2.000000000000000001 then 1.000000000000000002 at 5000: drawdown just under 5000.

    The daemon parses the raw bytes exactly (4999.999999999999995, no alert); replay must agree.
    """
    code, out, err = replay(capsys, "alphapoint_18_decimals.jsonl")
    assert (code, out, err) == (0, [], [])


def test_console_script_exit_code_and_streams() -> None:
    """The installed script: invalid JSON on line 3 exits 2, alerts on stdout, error on stderr."""
    script = Path(sys.executable).parent / "position-monitor"
    path = REPLAY / "invalid_json.jsonl"
    result = subprocess.run(
        [str(script), "replay", str(path), "--rules", str(RULES), "--output", "jsonl"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert [json.loads(line) for line in result.stdout.splitlines()] == [NEW_SHORT_0920]
    err = result.stderr.splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"{path}:3: not valid JSON (")


def test_hostile_numbers_are_failed_polls_and_replay_goes_on() -> None:
    """netQty "-1e999999" and a pnl of 1E+1000000 (a JSON number) are failed polls naming the
    field; the next line still alerts and replay exits 0. In a subprocess with a timeout, as
    printing such a figure once took minutes."""
    script = Path(sys.executable).parent / "position-monitor"
    path = REPLAY / "hostile_numbers.jsonl"
    result = subprocess.run(
        [str(script), "replay", str(path), "--rules", str(RULES), "--output", "text"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr.splitlines()) == (
        0,
        [
            f"{path}:2: account pf-desk: poll failed: portfolio: data[0].netQty: out of range: "
            "'-1E+999999' is not below 10^12 in magnitude",
            f"{path}:3: account pf-desk: poll failed: portfolio: data[0].pnl: out of range: "
            "'1E+1000000' is not below 10^15 in magnitude",
        ],
    )
    assert result.stdout.splitlines() == [
        "2026-11-23T09:19:00+05:30 WARNING  fresh-short [pf-desk] New short RELIANCE-EQ "
        "(nse_cm): net qty 10 -> -5"
    ]


def test_hostile_quote_stops_replay(capsys: pytest.CaptureFixture[str]) -> None:
    """A quote past 10^15 is a malformed line: FILE:LINE and the reason, exit 2."""
    code, out, err = replay(capsys, "hostile_quote.jsonl")
    assert (code, out) == (2, [])
    assert err == [
        f"{REPLAY / 'hostile_quote.jsonl'}:1: quotes.nse_cm:2885: not a price: out of range: "
        "'1E+1000000' is not below 10^15 in magnitude"
    ]


@pytest.mark.parametrize("output", ["text", "jsonl"])
def test_control_characters_cannot_forge_lines(
    capsys: pytest.CaptureFixture[str], output: str
) -> None:
    """A symbol carrying a newline and a whole fake alert, and a broker message carrying a fake
    line, print as one line each, their control characters written out."""
    code, out, err = replay(capsys, "hostile_text.jsonl", output=output)
    assert code == 0
    assert err == [
        f"{REPLAY / 'hostile_text.jsonl'}:2: account pf-desk: poll failed: portfolio: Status "
        "Failed, errorCode 500: bad\\n2026-11-23T09:17:00+05:30 WARNING fake"
    ]
    (line,) = out
    symbol = "RELIANCE-EQ\n2026-11-23T09:16:00+05:30 CRITICAL desk-drawdown [pf-desk] MTM fell "
    symbol += "\u202e1 \x1b[2J"
    if output == "jsonl":
        assert json.loads(line)["symbol"] == symbol
    else:
        assert line == (
            "2026-11-23T09:17:00+05:30 WARNING  fresh-short [pf-desk] New short "
            "RELIANCE-EQ\\n2026-11-23T09:16:00+05:30 CRITICAL desk-drawdown [pf-desk] MTM fell "
            "\\u202e1 \\x1b[2J (nse_cm): net qty 10 -> -5"
        )


# Condition kinds and their lifecycle options, replayed against tests/fixtures/rules/
# conditions.yaml: one rule per account, so each fixture exercises one rule.

CONDITIONS = FIXTURES / "rules" / "conditions.yaml"


def replay_conditions(
    capsys: pytest.CaptureFixture[str], name: str
) -> tuple[list[dict[str, object]], list[str]]:
    """The alerts of one condition fixture as JSON objects, and stderr's lines."""
    code, out, err = replay(capsys, name, rules=CONDITIONS)
    assert code == 0
    return [json.loads(line) for line in out], err


def summary(alerts: list[dict[str, object]]) -> list[tuple[object, ...]]:
    """(rule, state, at, symbol, details) of each alert."""
    return [(a["rule"], a["state"], a["at"], a["symbol"], a["details"]) for a in alerts]


def test_mtm_below_for_repeat_and_resolved(capsys: pytest.CaptureFixture[str]) -> None:
    """Loss limit -5000, for 10m, repeat 30m, send_resolved. Breached on the baseline but
    cleared at 09:20 (the pending is cancelled); at the limit again from 09:25, through a
    failed poll, it fires at 09:35; reminds at 10:05 with the figures then; resolves at 10:10.
    Pending again at 10:15, the next day starts the count afresh: it fires at 09:25 on the 24th.
    """
    alerts, err = replay_conditions(capsys, "mtm_below.jsonl")
    assert err == [
        f"{REPLAY / 'mtm_below.jsonl'}:4: account below-desk: poll failed: portfolio: "
        "transport error: timeout"
    ]
    since = "2026-11-23T09:35:00+05:30"
    assert summary(alerts) == [
        ("loss-limit", "firing", since, None, {"mtm": -5500, "threshold": -5000}),
        ("loss-limit", "firing", "2026-11-23T10:05:00+05:30", None,
         {"mtm": -7000, "threshold": -5000, "since": since}),
        ("loss-limit", "resolved", "2026-11-23T10:10:00+05:30", None,
         {"mtm": -4999, "threshold": -5000, "since": since}),
        ("loss-limit", "firing", "2026-11-24T09:25:00+05:30", None,
         {"mtm": -6000, "threshold": -5000}),
    ]  # fmt: skip
    assert alerts[1] == {
        "rule": "loss-limit",
        "kind": "mtm_below",
        "severity": "critical",
        "state": "firing",
        "account": "below-desk",
        "exchange_segment": None,
        "token": None,
        "product": None,
        "symbol": None,
        "at": "2026-11-23T10:05:00+05:30",
        "message": "Still: MTM at or below the limit on account below-desk since 09:35:00: "
        "MTM -7,000.00, limit -5,000.00",
        "details": {"mtm": -7000, "threshold": -5000, "since": since},
    }


def test_mtm_above_keep_firing_for(capsys: pytest.CaptureFixture[str]) -> None:
    """Profit target 8000, keep_firing_for 10m, send_resolved: fires at exactly 8000 (09:20);
    a dip at 09:25 is kept firing, 8500 at 09:30 restarts the count, and after clear polls from
    09:35 it resolves at the first poll 10 minutes later, 09:45."""
    alerts, err = replay_conditions(capsys, "mtm_above.jsonl")
    assert err == []
    assert summary(alerts) == [
        ("profit-target", "firing", "2026-11-23T09:20:00+05:30", None,
         {"mtm": 8000, "threshold": 8000}),
        ("profit-target", "resolved", "2026-11-23T09:45:00+05:30", None,
         {"mtm": 6500, "threshold": 8000, "since": "2026-11-23T09:20:00+05:30"}),
    ]  # fmt: skip
    assert alerts[1]["severity"] == "info"


def test_position_limit_per_row(capsys: pytest.CaptureFixture[str]) -> None:
    """Max 100 either way, send_resolved: RELIANCE long 150 fires on the baseline, INFY short
    120 at 09:20; RELIANCE back at 100 resolves (09:25). INFY's row then vanishes: its state
    ends without a resolved alert, and when it comes back at 09:40 it fires afresh."""
    alerts, err = replay_conditions(capsys, "position_limit.jsonl")
    assert err == []
    reliance = {"net_qty": 150, "max_quantity": 100}
    infy = {"net_qty": -120, "max_quantity": 100}
    assert summary(alerts) == [
        ("size-limit", "firing", "2026-11-23T09:15:00+05:30", "RELIANCE-EQ", reliance),
        ("size-limit", "firing", "2026-11-23T09:20:00+05:30", "INFY-EQ", infy),
        ("size-limit", "resolved", "2026-11-23T09:25:00+05:30", "RELIANCE-EQ",
         {"net_qty": 100, "max_quantity": 100, "since": "2026-11-23T09:15:00+05:30"}),
        ("size-limit", "firing", "2026-11-23T09:40:00+05:30", "INFY-EQ", infy),
    ]  # fmt: skip
    assert (alerts[0]["exchange_segment"], alerts[0]["token"]) == ("nse_cm", "11536")


def test_mtm_drawdown_with_lifecycle_options(capsys: pytest.CaptureFixture[str]) -> None:
    """Threshold 1000, for 5m, repeat 15m, send_resolved. Active at 09:20, then 09:22 in the
    band between half and the full threshold cancels the pending; active again from 09:25, it
    fires at 09:30. At 09:45, still in the band, it reminds; below half at 09:50 it resolves."""
    alerts, err = replay_conditions(capsys, "mtm_drawdown_lifecycle.jsonl")
    assert err == []
    since = "2026-11-23T09:30:00+05:30"
    assert summary(alerts) == [
        ("dd-lifecycle", "firing", since, None, {"mtm": 3800, "peak": 5000, "drawdown": 1200}),
        ("dd-lifecycle", "firing", "2026-11-23T09:45:00+05:30", None,
         {"mtm": 4300, "peak": 5000, "drawdown": 700, "since": since}),
        ("dd-lifecycle", "resolved", "2026-11-23T09:50:00+05:30", None,
         {"mtm": 4600, "peak": 5000, "drawdown": 400, "since": since}),
    ]  # fmt: skip


def test_resolved_alerts_in_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    """The text form says RESOLVED where a firing alert shows its severity."""
    code, out, _ = replay(capsys, "mtm_above.jsonl", rules=CONDITIONS, output="text")
    assert code == 0
    assert out == [
        "2026-11-23T09:20:00+05:30 INFO     profit-target [above-desk] MTM at or above the "
        "target on account above-desk: MTM 8,000.00, target 8,000.00",
        "2026-11-23T09:45:00+05:30 RESOLVED profit-target [above-desk] Resolved: MTM at or "
        "above the target on account above-desk: MTM 6,500.00, target 8,000.00",
    ]


# Rows that vanish: docs/reliability.md, "Rows missing from an answer".

EMPTY_ANSWER_REMOVED = {
    "kotak_neo": ("kotak-main", "+05:30", 6500, [("RELIANCE-EQ", 10), ("BANKNIFTY21JULFUT", -25)]),
    "portfolio": ("pf-desk", "+05:30", 6500, [("RELIANCE-EQ", 10), ("INFY-EQ", -5)]),
    "samco": ("samco-1", "+05:30", 6500, [("RELIANCE", 18), ("SBIN", -50)]),
    "alphapoint": ("ap-4", "+00:00", 61000, [("BTC", 1), ("USD", 1000)]),
    "torus": ("torus-1", "+05:30", 6500, [("RELIANCE", -1), ("INFY", 10)]),
}


@pytest.mark.parametrize("broker", list(EMPTY_ANSWER_REMOVED))
def test_an_empty_good_answer_mid_day_raises_nothing_until_the_next_confirms_it(
    capsys: pytest.CaptureFixture[str], broker: str
) -> None:
    """Polls at 10:00:00-10:00:20: full, empty, full, empty, empty, where empty is the broker's
    documented empty book (Kotak 5203 "No Data", portfolio ``data: []``, Samco "No Positions
    Found", AlphaPoint ``[]``, Torus empty ``data``).

    The first empty answer raises nothing (no square-off, and no drawdown: the carried rows keep
    the MTM at its peak); the second in a row squares off every row once, ``row_removed``, and
    the MTM of 0 is then a drawdown from the unchanged peak.
    """
    account, offset, peak, rows = EMPTY_ANSWER_REMOVED[broker]
    code, out, err = replay(capsys, f"empty_answer_{broker}.jsonl")
    assert (code, err) == (0, [])
    at = f"2026-11-23T10:00:20{offset}"
    alerts = [
        (a["account"], a["at"], a["rule"], a["symbol"], a["details"]) for a in map(json.loads, out)
    ]
    removed = {"net_qty": 0, "row_removed": True}
    assert alerts == [
        (account, at, "desk-drawdown", None, {"mtm": 0, "peak": peak, "drawdown": peak}),
        *((account, at, "closed", sym, {"net_qty_before": qty, **removed}) for sym, qty in rows),
    ]


def test_a_row_back_after_one_poll_is_compared_with_the_row_as_last_reported(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """INFY (short 5) is missing at 10:00:05 and 10:00:15 and back after each: back as it was,
    nothing (not a new short); back flat at 10:00:20, a square-off that is not a removal."""
    code, out, err = replay(capsys, "row_back_after_one_poll.jsonl")
    assert (code, err) == (0, [])
    assert [(a["at"], a["rule"], a["symbol"], a["details"]) for a in map(json.loads, out)] == [
        (
            "2026-11-23T10:00:20+05:30",
            "closed",
            "INFY-EQ",
            {"net_qty_before": -5, "net_qty": 0, "row_removed": False},
        )
    ]


def test_a_short_answer_moves_no_drawdown_peak(capsys: pytest.CaptureFixture[str]) -> None:
    """MTM 6500 (the peak); then INFY's 2500 is missing and carried: 1000 + 2500 = 3500, a
    drawdown of 3000, not 5500; both back, 3500; then 1500: 5000 below the same peak of 6500."""
    code, out, err = replay(capsys, "drawdown_short_answer.jsonl")
    assert (code, err) == (0, [])
    assert [(a["at"], a["rule"], a["details"]) for a in map(json.loads, out)] == [
        (
            "2026-11-23T10:00:15+05:30",
            "desk-drawdown",
            {"mtm": 1500, "peak": 6500, "drawdown": 5000},
        )
    ]


def test_a_row_carried_into_a_new_day_is_dropped_silently(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """INFY is missing from the day's last poll (15:30, carried) and from the next day's first
    (09:15): dropped without a square-off. RELIANCE, long at the close and short in the
    morning, is compared with the day before: a new short."""
    code, out, err = replay(capsys, "new_day_carried_row.jsonl")
    assert (code, err) == (0, [])
    assert [(a["at"], a["rule"], a["symbol"], a["details"]) for a in map(json.loads, out)] == [
        (
            "2026-11-24T09:15:00+05:30",
            "fresh-short",
            "RELIANCE-EQ",
            {"net_qty_before": 10, "net_qty": -10},
        )
    ]


def test_alphapoint_funds_moved_are_no_drawdown(capsys: pytest.CaptureFixture[str]) -> None:
    """1 BTC at 60000 and 1000 USD: MTM 61000. Withdrawing 0.5 BTC, then 400 USD, then
    depositing 2 BTC leaves the MTM at 61000 (each valued net of the day's flows); only the
    price falling to 54000 is a loss: 6000 below the peak."""
    code, out, err = replay(capsys, "alphapoint_funds_moved.jsonl")
    assert (code, err) == (0, [])
    assert [(a["at"], a["rule"], a["details"]) for a in map(json.loads, out)] == [
        (
            "2026-11-23T10:20:00+00:00",
            "desk-drawdown",
            {"mtm": 55000, "peak": 61000, "drawdown": 6000},
        )
    ]
