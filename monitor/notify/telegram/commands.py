"""The bot's commands: parsed and answered here, against a read-only view of the daemon.

``/status``, ``/positions [account] [page]``, ``/mute <rule|account> <duration>``,
``/unmute [rule|account]`` and ``/help``. Answers are HTML; every user-derived string is
escaped. A mute is stored, so it survives a restart, and holds back only this chat's alerts.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from monitor.durations import parse_duration
from monitor.health import AccountStatus
from monitor.model import ZERO, Snapshot, format_money, format_qty
from monitor.notify.telegram.format import SEVERITY_MARK, clock_time, html_field, pack
from monitor.printable import printable
from monitor.rules.conditions import FiringCondition

PAGE_ROWS = 25
TABLE_WIDTH = 40  # monospace characters a phone shows on one line
FIRING_ROWS = 50  # conditions listed by /status; a position limit may fire for hundreds
MIN_MUTE = timedelta(seconds=1)
MAX_MUTE = timedelta(days=7)
HEALTH_RULES = ("poll_failing", "poll_recovered")

HELP = "\n".join(
    [
        "<b>position-monitor</b>",
        "/status: accounts, last good poll, failures, conditions firing, alerts waiting",
        "/positions [account] [page]: net positions and MTM",
        "/mute &lt;rule|account&gt; &lt;duration&gt;: hold back alerts here, e.g. /mute"
        " fresh-short 30m (s, m, h, d; at most 7d)",
        "/unmute [rule|account]: lift one mute, or all of this chat's",
        "/help: this list",
    ]
)


class DaemonView(Protocol):
    """What the commands may read of the running daemon."""

    def statuses(self) -> Sequence[AccountStatus]: ...

    def snapshot(self, account: str) -> Snapshot | None: ...

    def rule_names(self) -> Sequence[str]: ...

    def firing_conditions(self) -> Sequence[FiringCondition]: ...


class Mutes(Protocol):
    """The mutes kept in the state file, per outbox destination (the store is one)."""

    async def mute(self, sinks: Sequence[str], target: str, until: datetime) -> None: ...

    async def unmute(self, sinks: Sequence[str], target: str | None = None) -> int: ...

    async def mutes(self, sink: str, now: datetime) -> Mapping[str, datetime]: ...


class OutboxDepth(Protocol):
    """How many deliveries wait in the outbox, per destination (the store is one)."""

    async def outbox_depth(self) -> Mapping[str, int]: ...


@dataclass(frozen=True, slots=True)
class Chat:
    """Where a command came from: the outbox destinations that deliver to that chat."""

    destinations: Sequence[str]
    timezone: ZoneInfo  # for times in answers that belong to no account


class Commands:
    """Answers one command text with the HTML messages to send back."""

    def __init__(self, view: DaemonView, mutes: Mutes, outbox: OutboxDepth) -> None:
        self._view = view
        self._mutes = mutes
        self._outbox = outbox

    async def answer(
        self, command: str, args: Sequence[str], chat: Chat, now: datetime
    ) -> list[str]:
        """The reply to ``/command args...``; unknown commands get the help text."""
        if command == "status":
            lines = (await self._status(chat, now)).split("\n")
            return [message.text for message in pack([[line] for line in lines])]
        if command == "positions":
            return [self._positions(args, now)]
        if command == "mute":
            return [await self._mute(args, chat, now)]
        if command == "unmute":
            return [await self._unmute(args, chat)]
        return [HELP]

    async def _status(self, chat: Chat, now: datetime) -> str:
        lines = ["<b>Accounts</b>"]
        for status in self._view.statuses():
            account = status.account
            zone = account.timezone
            name = f"<code>{html_field(account.id)}</code> ({html_field(account.broker)})"
            if status.last_success is None:
                last = "no good poll yet"
            else:
                ago = _ago(now - status.last_success)
                at = clock_time(status.last_success, zone, now.astimezone(zone).date())
                last = f"last good poll {html_field(at)} ({ago} ago)"
            mark = "🔴" if status.failing else ("🟠" if status.failed_polls else "🟢")
            line = f"{mark} {name}: {last}"
            if status.failed_polls:
                line += f"; {status.failed_polls} failed since: {html_field(status.last_reason)}"
            lines.append(line)
        lines += self._firing(now)
        depth = await self._outbox.outbox_depth()
        waiting = sum(depth.values())
        lines.append(f"\n<b>Outbox</b>: {waiting} alert deliveries waiting")
        lines += [f"{html_field(sink)}: {n}" for sink, n in sorted(depth.items()) if n]
        mutes = await self._chat_mutes(chat, now)
        if mutes:
            lines.append("\n<b>Muted here</b>")
            today = now.astimezone(chat.timezone).date()
            for target, until in sorted(mutes.items()):
                at = clock_time(until, chat.timezone, today)
                lines.append(f"{html_field(target.replace(':', ' ', 1))} until {html_field(at)}")
        return "\n".join(lines)

    def _firing(self, now: datetime) -> list[str]:
        """The conditions firing now: rule, account, subject and since when (account's zone)."""
        firing = self._view.firing_conditions()
        if not firing:
            return ["\n<b>Firing now</b>: none"]
        zones = {status.account.id: status.account.timezone for status in self._view.statuses()}
        lines = [f"\n<b>Firing now</b>: {len(firing)}"]
        for condition in firing[:FIRING_ROWS]:
            zone = zones.get(condition.account)
            at = clock_time(condition.since, zone, now.astimezone(zone).date())
            key = condition.key
            subject = "account"
            if key is not None:
                where = " ".join(part for part in (key.exchange_segment, key.product) if part)
                subject = f"<b>{html_field(condition.symbol or key.token)}</b> {html_field(where)}"
            lines.append(
                f"{SEVERITY_MARK[condition.severity]} <b>{html_field(condition.rule)}</b>"
                f" <code>{html_field(condition.account)}</code> {subject}"
                f" since {html_field(at)} ({_ago(now - condition.since)})"
            )
        if len(firing) > FIRING_ROWS:
            lines.append(f"and {len(firing) - FIRING_ROWS} more")
        return lines

    def _positions(self, args: Sequence[str], now: datetime) -> str:
        accounts = [s.account.id for s in self._view.statuses()]
        numbers = [a for a in args if a.isascii() and a.isdigit()]
        names = [a for a in args if a not in numbers]
        pages = [int(a) for a in numbers]
        if names:
            account = names[0]
        elif len(accounts) == 1:
            account = accounts[0]
        else:
            listed = ", ".join(f"<code>{html_field(a)}</code>" for a in accounts)
            return f"Which account? /positions &lt;account&gt;; configured: {listed}"
        if account not in accounts:
            listed = ", ".join(f"<code>{html_field(a)}</code>" for a in accounts)
            return f"No account <code>{html_field(account)}</code>; configured: {listed}"
        snapshot = self._view.snapshot(account)
        if snapshot is None:
            return f"<code>{html_field(account)}</code>: no good poll yet"
        return positions_page(snapshot, pages[0] if pages else 1, now)

    async def _mute(self, args: Sequence[str], chat: Chat, now: datetime) -> str:
        if len(args) != 2:
            return "Usage: /mute &lt;rule|account&gt; &lt;duration&gt;, e.g. /mute fresh-short 30m"
        target = self._target(args[0])
        if target is None:
            return self._unknown(args[0])
        try:
            duration = parse_duration(args[1], minimum=MIN_MUTE, maximum=MAX_MUTE)
        except ValueError:
            return (
                f"Duration <code>{html_field(args[1])}</code>: use a number and s, m, h or d"
                " (at most 7d), e.g. 30m"
            )
        until = now + duration
        await self._mutes.mute(chat.destinations, target, until)
        at = clock_time(until, chat.timezone, now.astimezone(chat.timezone).date())
        what = html_field(target.replace(":", " ", 1))
        return (
            f"🔕 Muted {what} in this chat until {html_field(at)}. Its alerts are recorded, not"
            f" sent here. /unmute {html_field(args[0])} to lift it."
        )

    async def _unmute(self, args: Sequence[str], chat: Chat) -> str:
        if not args:
            lifted = await self._mutes.unmute(chat.destinations)
            return f"🔔 Lifted {lifted} mute{'s' * (lifted != 1)} in this chat."
        target = self._target(args[0])
        if target is None:
            return self._unknown(args[0])
        if not await self._mutes.unmute(chat.destinations, target):
            return f"{html_field(target.replace(':', ' ', 1))} is not muted here."
        return f"🔔 Unmuted {html_field(target.replace(':', ' ', 1))} in this chat."

    def _target(self, name: str) -> str | None:
        """``rule:NAME`` or ``account:ID``; a ``rule:``/``account:`` prefix settles a clash."""
        rules = (*self._view.rule_names(), *HEALTH_RULES)
        accounts = [s.account.id for s in self._view.statuses()]
        kind, _, rest = name.partition(":")
        if rest and kind in ("rule", "account"):
            known = rules if kind == "rule" else accounts
            return name if rest in known else None
        if name in rules:
            return f"rule:{name}"
        if name in accounts:
            return f"account:{name}"
        return None

    def _unknown(self, name: str) -> str:
        rules = _listing([*self._view.rule_names(), *HEALTH_RULES])
        accounts = _listing([s.account.id for s in self._view.statuses()])
        return (
            f"No rule or account <code>{html_field(name)}</code>."
            f"\nRules: {rules}\nAccounts: {accounts}"
        )

    async def _chat_mutes(self, chat: Chat, now: datetime) -> Mapping[str, datetime]:
        mutes: dict[str, datetime] = {}
        for destination in chat.destinations:
            mutes.update(await self._mutes.mutes(destination, now))
        return mutes


def positions_page(snapshot: Snapshot, page: int, now: datetime) -> str:
    """One page of an account's positions as a table a phone shows unwrapped (at most
    ``TABLE_WIDTH`` characters: symbol and product, quantity, MTM in whole rupees), with the
    total MTM; a page that does not exist says how many there are."""
    rows = list(snapshot.positions.values())
    count = max(1, -(-len(rows) // PAGE_ROWS))
    account = html_field(snapshot.account)
    if not 1 <= page <= count:
        pages = "1 page" if count == 1 else f"{count} pages"
        return f"Page {page} does not exist: <code>{account}</code> has {pages}."
    shown = rows[(page - 1) * PAGE_ROWS : page * PAGE_ROWS]
    cells = [("SYMBOL", "QTY", "MTM")]
    for p in shown:
        # A newline in a symbol would start a fake row.
        name = " ".join(printable(part) for part in (p.symbol, p.key.product) if part)
        mtm = "?" if p.mtm is None else f"{p.mtm:,.0f}"
        cells.append((name, format_qty(p.net_qty), mtm))
    qty_width = max(len(qty) for _, qty, _ in cells)
    mtm_width = max(len(mtm) for *_, mtm in cells)
    widest = max(len(name) for name, *_ in cells)
    name_width = max(4, min(widest, TABLE_WIDTH - qty_width - mtm_width - 2))
    lines = []
    for name, qty, mtm in cells:
        cut = name if len(name) <= name_width else name[: name_width - 1] + "…"
        lines.append(f"{cut:<{name_width}} {qty:>{qty_width}} {mtm:>{mtm_width}}".rstrip())
    table = "\n".join(lines)  # fields are cut to width, so no per-field cap here
    known = [p.mtm for p in rows if p.mtm is not None]
    zone = snapshot.taken_at.tzinfo
    at = clock_time(snapshot.taken_at, zone, now.astimezone(zone).date())
    head = f"<b>{account}</b> at {html_field(at)}: {len(rows)} positions"
    total = f"MTM {format_money(sum(known, ZERO))}"
    if len(known) < len(rows):
        total += f" ({len(rows) - len(known)} without a price)"
    more = ""
    if count > 1:
        more = f"\nPage {page} of {count}: /positions {account} {page % count + 1}"
    return f"{head}\n<pre>{html.escape(table, quote=False)}</pre>\n{html_field(total)}{more}"


def _listing(names: Sequence[str], most: int = 30) -> str:
    """Names for a reply, the first ``most`` of them: a reply must stay within one message."""
    shown = ", ".join(html_field(n) for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _ago(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"
