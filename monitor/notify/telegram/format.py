"""Alerts as Telegram HTML messages: pure functions, no I/O.

Every user-derived string (symbols like ``M&M``, account ids, broker error text) has its control
characters written out (a newline in a symbol cannot start a fake alert line), is escaped and
capped in length before it goes into a line, and every line opens and closes its own tags, so a
message split at a line boundary never breaks an entity. Alert groups and command replies alike
become messages within Telegram's limit through ``pack``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from decimal import Decimal

from monitor.model import Alert, AlertState, DetailValue, Severity, format_money, format_qty
from monitor.printable import printable

# Telegram's limit on a message's text (https://core.telegram.org/bots/api#sendmessage),
# counted in UTF-16 code units; measuring the HTML source over-counts, which is the safe side.
MESSAGE_LIMIT = 4096
_FIELD_LIMIT = 300  # any one user-derived string; keeps every line far below the limit

SEVERITY_MARK = {Severity.CRITICAL: "🔴", Severity.WARNING: "🟠", Severity.INFO: "🔵"}
_MONEY = {"mtm": "MTM", "peak": "Peak", "drawdown": "Drawdown", "threshold": "Threshold"}


@dataclass(frozen=True, slots=True)
class Message:
    """One Telegram message and how many blocks (a group's alerts) are whole once it is sent."""

    text: str
    complete: int


def html_field(value: object) -> str:
    """A user-derived value, its control characters written out, capped and escaped for HTML
    parse mode."""
    raw = printable(str(value))
    if len(raw) > _FIELD_LIMIT:
        raw = raw[: _FIELD_LIMIT - 1] + "…"
    return html.escape(raw, quote=False)


def utf16_len(value: str) -> int:
    """Length as Telegram counts it."""
    return len(value.encode("utf-16-le")) // 2


def clock_time(instant: datetime, zone: tzinfo | None, today: date) -> str:
    """The one time format of every message: ``09:20:05 IST`` in ``zone`` (the instant's own
    when None), with the date in front when it is not ``today``."""
    local = instant.astimezone(zone or instant.tzinfo)
    shown = local.strftime("%H:%M:%S %Z").strip()
    return shown if local.date() == today else f"{local:%Y-%m-%d} {shown}"


def alert_lines(alert: Alert, zone: tzinfo | None = None) -> list[str]:
    """The lines of one alert: its title, the position, the message, the figures.

    A resolved alert reads as good news (✅ RESOLVED, not the severity's colour) and says how
    long its condition fired; a repeat of a firing condition says it is still firing and since
    when, in ``zone`` (the account's) like the group's header.
    """
    details = dict(alert.details)
    since = _instant(details.get("since"))
    if since is not None:
        del details["since"]
    title = f"<b>{html_field(alert.rule)}</b> ({html_field(alert.kind)})"
    if alert.state is AlertState.RESOLVED:
        lines = [f"✅ <b>RESOLVED</b> {title}"]
    else:
        still = " · still firing" if since is not None else ""
        mark = SEVERITY_MARK[alert.severity]
        lines = [f"{mark} <b>{html_field(alert.severity.upper())}</b> {title}{still}"]
    if alert.key is not None:
        product = f" · {html_field(alert.key.product)}" if alert.key.product else ""
        lines.append(
            f"<b>{html_field(alert.symbol or alert.key.token)}</b> · "
            f"{html_field(alert.key.exchange_segment)}{product}"
        )
    lines.append(html_field(alert.message))
    if "net_qty" in details:
        before, after = details.pop("net_qty_before", None), details.pop("net_qty")
        arrow = f"{_qty(before)} → {_qty(after)}" if before is not None else _qty(after)
        lines.append(f"Net qty <code>{html_field(arrow)}</code>")
    figures = [
        f"{label} <code>{html_field(_money(details[name]))}</code>"
        for name, label in _MONEY.items()
        if name in details
    ]
    if figures:
        lines.append(" · ".join(figures))
    today = alert.at.astimezone(zone or alert.at.tzinfo).date()
    for name, value in details.items():
        # A false flag or an empty value tells a trader nothing; a true flag is its name.
        if name in _MONEY or value is None or value is False or value == "":
            continue
        label = html_field(name.replace("_", " "))
        if value is True:
            lines.append(label)
            continue
        instant = _instant(value)
        shown = _plain(value) if instant is None else clock_time(instant, zone, today)
        lines.append(f"{label}: {html_field(shown)}")
    if since is not None:
        started = html_field(clock_time(since, zone, today))
        lasted = _elapsed(alert.at - since)
        if alert.state is AlertState.RESOLVED:
            lines.append(f"Firing since {started}, resolved after {lasted}")
        else:
            lines.append(f"⏳ Still firing since {started} ({lasted})")
    return lines


def group_messages(
    alerts: Sequence[Alert], zone: tzinfo | None = None, now: datetime | None = None
) -> list[Message]:
    """The messages for one poll's alerts of one account, each within Telegram's limit.

    A header names the account and the time in ``zone`` (the account's) once, with the date
    when it is not the day of ``now`` (a delivery held back overnight); alerts follow, packed
    whole into as few messages as fit. An alert too long for one message is split at lines.
    An alert read back from the outbox carries only its UTC offset, which would print as
    "UTC+05:30": the zone gives the header its name ("IST").
    """
    first = alerts[0]
    today = (now or first.at).astimezone(zone or first.at.tzinfo).date()
    when = clock_time(first.at, zone, today)
    count = f" · {len(alerts)} alerts" if len(alerts) > 1 else ""
    header = f"<b>{html_field(first.account)}</b> · {html_field(when)}{count}"
    blocks = [["", *alert_lines(alert, zone)] for alert in alerts]  # a blank line between alerts
    return pack(blocks, header)


def pack(blocks: Sequence[Sequence[str]], header: str | None = None) -> list[Message]:
    """Blocks of lines (each line whole HTML) in as few messages as fit Telegram's limit.

    A block goes whole into one message when it fits; one too long for a message is split at
    lines. With a header, every message opens with it, marked "(cont.)" after the first.
    ``complete`` counts the blocks that are whole once a message is sent.
    """
    messages: list[Message] = []
    lines = [] if header is None else [header]
    opening = len(lines)  # the lines every message starts with
    size = utf16_len(header) if header is not None else 0

    def flush(complete: int) -> None:
        nonlocal lines, size
        messages.append(Message("\n".join(lines), complete))
        lines = [] if header is None else [f"{header} (cont.)"]
        size = sum(map(utf16_len, lines))

    for index, block in enumerate(blocks):
        needed = sum(utf16_len(line) + 1 for line in block)
        if size + needed > MESSAGE_LIMIT and len(lines) > opening:
            flush(index)
        for line in block:
            if size + utf16_len(line) + 1 > MESSAGE_LIMIT and len(lines) > opening:
                flush(index)  # inside one oversized block: it is complete only later
            size += utf16_len(line) + (1 if lines else 0)  # the newline before it
            lines.append(line)
    messages.append(Message("\n".join(lines), len(blocks)))
    return messages


def _instant(value: DetailValue) -> datetime | None:
    """``details.since`` as an instant; None when absent or not an instant with an offset."""
    if not isinstance(value, str):
        return None
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        return None
    return instant if instant.tzinfo is not None else None


def _elapsed(delta: timedelta) -> str:
    """A duration as a trader reads it: 40 s, 25 min, 2 h 05 min."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _qty(value: DetailValue) -> str:
    return format_qty(value) if isinstance(value, Decimal) else str(value)


def _money(value: DetailValue) -> str:
    return format_money(value) if isinstance(value, Decimal) else str(value)


def _plain(value: DetailValue) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
