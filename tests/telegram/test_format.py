"""Alert groups rendered as Telegram HTML: escaping, content, grouping and splitting."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from monitor.model import Alert, PositionKey, Severity
from monitor.notify.telegram.format import MESSAGE_LIMIT, group_messages, pack, utf16_len
from monitor.rules.base import PositionFilter
from monitor.rules.conditions import Scope
from monitor.rules.lifecycle import Lifecycle
from monitor.rules.mtm_below import MtmBelow
from tests.fakes.telegram import _parse_problem
from tests.snapshots import poll, pos, snap

IST = ZoneInfo("Asia/Kolkata")
AT = datetime(2026, 11, 23, 9, 20, 5, tzinfo=IST)


def short(symbol: str = "M&M<EQ>", account: str = "kotak-main") -> Alert:
    key = PositionKey(account, "nse_cm", "2031", "MIS")
    return Alert(
        "fresh-short", "new_short", Severity.WARNING, account, key, symbol, AT,
        f"New short {symbol} (nse_cm MIS): net qty 0 -> -25",
        {"net_qty_before": Decimal(0), "net_qty": Decimal(-25)},
    )  # fmt: skip


def drawdown() -> Alert:
    return Alert(
        "desk-drawdown", "mtm_drawdown", Severity.CRITICAL, "kotak-main", None, None, AT,
        "MTM drawdown on account kotak-main",
        {"mtm": Decimal("-12500.5"), "peak": Decimal("1000"), "drawdown": Decimal("13500.5")},
    )  # fmt: skip


def test_user_strings_are_escaped_and_telegram_accepts_the_html() -> None:
    """Symbols like M&M and <EQ> arrive escaped; the fake's HTML check finds nothing wrong."""
    (message,) = group_messages([short()])
    assert "M&amp;M&lt;EQ&gt;" in message.text
    assert "M&M" not in message.text and "<EQ>" not in message.text
    assert _parse_problem(message.text) == ""


def test_an_unescaped_symbol_would_be_refused_by_the_fake() -> None:
    """The fake's parser is strict enough that the escaping test above can fail."""
    assert _parse_problem("<b>M&M</b>") != ""
    assert _parse_problem("<b>a < b</b>") != ""
    assert _parse_problem("<b>open") != ""


def test_a_position_alert_shows_rule_account_position_quantities_and_local_time() -> None:
    """Rule, severity, account, symbol, segment, product, qty before -> after, time in IST."""
    (message,) = group_messages([short("BANKNIFTY21JULFUT")])
    text = message.text
    for part in (
        "fresh-short", "WARNING", "kotak-main", "BANKNIFTY21JULFUT", "nse_cm", "MIS",
        "0 → -25", "09:20:05 IST",
    ):  # fmt: skip
        assert part in text, part


def test_a_drawdown_alert_shows_mtm_peak_and_drawdown() -> None:
    """Account-scope drawdown: MTM, peak and drawdown as money."""
    (message,) = group_messages([drawdown()])
    assert "MTM <code>-12,500.50</code>" in message.text
    assert "Peak <code>1,000.00</code>" in message.text
    assert "Drawdown <code>13,500.50</code>" in message.text
    assert "CRITICAL" in message.text


def test_one_poll_of_one_account_is_one_message() -> None:
    """Three alerts of one poll: one message naming the account once with the count."""
    messages = group_messages([drawdown(), short("A"), short("B")])
    assert len(messages) == 1
    assert messages[0].complete == 3
    assert "3 alerts" in messages[0].text
    assert messages[0].text.count("kotak-main") >= 1


def test_a_long_group_is_split_at_alert_boundaries_under_the_limit() -> None:
    """200 alerts: several messages, each within 4096, each alert whole in exactly one."""
    alerts = [short(f"SYM{i:04d}&CO") for i in range(200)]
    messages = group_messages(alerts)
    assert len(messages) > 1
    for message in messages:
        assert utf16_len(message.text) <= MESSAGE_LIMIT
        assert _parse_problem(message.text) == ""
    joined = "\n".join(m.text for m in messages)
    for i in range(200):
        assert joined.count(f"SYM{i:04d}&amp;CO") == 2  # the symbol line and the message line
    completes = [m.complete for m in messages]
    assert completes == sorted(completes) and completes[-1] == 200
    # Each message's count is the number of alerts fully inside it and those before it.
    for message, complete in zip(messages, completes, strict=True):
        assert f"SYM{complete - 1:04d}&amp;CO" in message.text


def test_a_huge_user_string_is_capped_not_split_mid_entity() -> None:
    """A 10,000-character symbol of ampersands is cut and escaped; every message parses."""
    messages = group_messages([short("&" * 10_000)])
    for message in messages:
        assert utf16_len(message.text) <= MESSAGE_LIMIT
        assert _parse_problem(message.text) == ""


@given(st.lists(st.text(min_size=1, max_size=400), min_size=1, max_size=40))
def test_any_symbols_give_valid_messages_within_the_limit(symbols: list[str]) -> None:
    """Whatever the broker calls its instruments, every message is valid and within limits."""
    messages = group_messages([short(s) for s in symbols])
    assert messages[-1].complete == len(symbols)
    for message in messages:
        assert utf16_len(message.text) <= MESSAGE_LIMIT
        assert _parse_problem(message.text) == ""


def test_a_long_status_is_split_into_messages_within_the_limit() -> None:
    """Many accounts: /status comes as several messages, none over 4096, no line lost."""
    lines = [
        f"🟢 <code>account-{i:03d}</code> (kotak_neo): last good poll 09:20:05 IST"
        for i in range(300)
    ]
    messages = [message.text for message in pack([[line] for line in lines])]
    assert len(messages) > 1
    assert all(utf16_len(m) <= MESSAGE_LIMIT for m in messages)
    assert "\n".join(messages).split("\n") == lines


def loss_limit_alerts() -> list[Alert]:
    """The alerts of a loss limit at -50,000 that repeats every 10 min and sends resolved:
    fired at 09:20:05, repeated at 09:30:05 and 09:45:05, resolved at 09:50:05; the alerts come
    back from the outbox's JSON, as the sink gets them."""
    rule = MtmBelow(
        "daily-loss", Severity.CRITICAL, PositionFilter(), Scope.ACCOUNT,
        Lifecycle(repeat_interval=timedelta(minutes=10), send_resolved=True), Decimal(-50000),
    )  # fmt: skip
    state = None
    alerts: list[Alert] = []
    for minute, mtm in [(0, -52000), (10, -55000), (25, -53000), (30, -20000)]:
        taken = snap(pos("1", 25, mtm=mtm), at=AT + timedelta(minutes=minute))
        state, raised = rule.evaluate(state, poll(taken))
        alerts += [Alert.from_json(json.loads(alert.to_jsonl())) for alert in raised]
    return alerts


def test_a_resolved_alert_reads_as_good_news_with_how_long_it_fired() -> None:
    """✅ RESOLVED instead of the red CRITICAL, and since when and for how long it fired, in
    the account's zone; the raw since detail is not repeated."""
    *_, resolved = loss_limit_alerts()
    (message,) = group_messages([resolved], IST)
    first, *rest = message.text.split("\n")[2:]
    assert first == "✅ <b>RESOLVED</b> <b>daily-loss</b> (mtm_below)"
    assert "🔴" not in message.text and "CRITICAL" not in message.text
    assert rest[0].startswith("Resolved: MTM at or below the limit on account kotak-main")
    assert rest[-1] == "Firing since 09:20:05 IST, resolved after 30 min"
    assert "since:" not in message.text and "T09:20" not in message.text
    assert _parse_problem(message.text) == ""


def test_a_repeat_says_still_firing_since_when_in_the_accounts_zone() -> None:
    """A reminder: the severity's styling, "still firing", and since 09:20:05 IST with the time
    elapsed (the outbox gives it as +05:30; the zone names it IST)."""
    fired, *repeats, _ = loss_limit_alerts()
    assert len(repeats) == 2
    (message,) = group_messages([repeats[-1]], IST)
    lines = message.text.split("\n")
    assert lines[2] == "🔴 <b>CRITICAL</b> <b>daily-loss</b> (mtm_below) · still firing"
    assert "MTM <code>-53,000.00</code>" in message.text  # this poll's figures
    assert lines[-1] == "⏳ Still firing since 09:20:05 IST (25 min)"
    assert "since:" not in message.text
    assert _parse_problem(message.text) == ""
    (first,) = group_messages([fired], IST)
    assert "still" not in first.text.lower() and "RESOLVED" not in first.text


def test_a_condition_firing_for_hours_shows_hours_and_minutes() -> None:
    """The time since is written for a trader: 2 h 05 min, not 125 min."""
    *_, resolved = loss_limit_alerts()
    later = dataclasses.replace(resolved, at=resolved.at + timedelta(minutes=95))
    (message,) = group_messages([later], IST)
    assert message.text.endswith("resolved after 2 h 05 min")


def test_a_since_that_is_not_an_instant_is_shown_as_it_is() -> None:
    """A stored alert whose since detail does not read as an instant keeps it as a plain
    detail, escaped, instead of failing the delivery."""
    odd = dataclasses.replace(drawdown(), details={"since": "<yesterday>"})
    (message,) = group_messages([odd], IST)
    assert "since: &lt;yesterday&gt;" in message.text
    assert "still" not in message.text
    assert _parse_problem(message.text) == ""


def squared_off(removed: bool) -> Alert:
    key = PositionKey("kotak-main", "nse_fo", "53179", "NRML")
    details = {"net_qty_before": Decimal(-25), "net_qty": Decimal(0), "row_removed": removed}
    message = "Squared off NIFTY26NOVFUT (nse_fo NRML): was -25, net qty 0"
    return Alert(
        "closed", "squared_off", Severity.INFO, "kotak-main", key, "NIFTY26NOVFUT", AT, message,
        details,
    )  # fmt: skip


def test_a_false_flag_is_left_out_and_a_true_one_is_its_name() -> None:
    """No ``row removed: false`` line; a row the broker stopped reporting says so in words."""
    (qty_zero,) = group_messages([squared_off(removed=False)], IST, AT)
    (gone,) = group_messages([squared_off(removed=True)], IST, AT)

    assert "row removed" not in qty_zero.text and "false" not in qty_zero.text
    assert gone.text.split("\n")[-1] == "row removed"
    assert qty_zero.text.split("\n")[0] == "<b>kotak-main</b> · 09:20:05 IST"


def test_times_in_details_read_like_every_other_time() -> None:
    """A health alert's last good poll is 09:12:40 IST (with the date when not the alert's day);
    an empty reason is left out."""
    alert = Alert("poll_failing", "poll_failing", Severity.CRITICAL, "kotak-main", None, None, AT,
                  "No good poll", {"failed_polls": 3, "reason": "",
                                   "last_success": "2026-11-23T03:42:40+00:00"})  # fmt: skip
    (message,) = group_messages([alert], IST, AT)
    lines = message.text.split("\n")
    assert lines[-2:] == ["failed polls: 3", "last success: 09:12:40 IST"]

    earlier = dataclasses.replace(alert, details={"last_success": "2026-11-22T15:00:00+05:30"})
    (message,) = group_messages([earlier], IST, AT)
    assert message.text.split("\n")[-1] == "last success: 2026-11-22 15:00:00 IST"
