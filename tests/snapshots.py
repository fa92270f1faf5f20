"""Plain-data builders for positions, snapshots, changes and polls shared by the tests.

Imported as ``from tests.snapshots import ...``; that works under pytest's importlib import
mode because the repository root is the rootdir.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from monitor.model import Change, ChangeKind, Position, PositionKey, Snapshot
from monitor.rules.base import Poll
from monitor.rules.conditions import Tracked
from monitor.rules.lifecycle import INACTIVE, Condition

IST = ZoneInfo("Asia/Kolkata")
UTC = ZoneInfo("UTC")
ACCOUNT = "kotak-main"
BROKER = "kotak_neo"
T0 = datetime(2026, 11, 23, 9, 20, 5, tzinfo=IST)

Number = Decimal | int | str


def dec(value: Number | None) -> Decimal | None:
    """A Decimal from an int or a decimal string; None stays None."""
    return None if value is None else Decimal(str(value))


def key(
    token: str = "53179",  # noqa: S107 - an instrument token, not a secret
    *,
    account: str = ACCOUNT,
    segment: str = "nse_fo",
    product: str = "NRML",
) -> PositionKey:
    """A position key with defaults for everything but what a test varies."""
    return PositionKey(account, segment, token, product)


def pos(
    token: str = "53179",  # noqa: S107 - an instrument token, not a secret
    qty: Number = 0,
    *,
    account: str = ACCOUNT,
    segment: str = "nse_fo",
    product: str = "NRML",
    symbol: str | None = None,
    mtm: Number | None = 0,
    avg_price: Number | None = None,
    ltp: Number | None = None,
    realized: Number | None = None,
    unrealized: Number | None = None,
) -> Position:
    """A position row; ``symbol`` defaults to ``SYM<token>``."""
    net_qty = dec(qty)
    assert net_qty is not None
    return Position(
        key=key(token, account=account, segment=segment, product=product),
        symbol=symbol if symbol is not None else f"SYM{token}",
        net_qty=net_qty,
        avg_price=dec(avg_price),
        ltp=dec(ltp),
        realized=dec(realized),
        unrealized=dec(unrealized),
        mtm=dec(mtm),
    )


def snap(
    *positions: Position,
    account: str = ACCOUNT,
    at: datetime = T0,
    broker: str = BROKER,
    carried: frozenset[PositionKey] = frozenset(),
) -> Snapshot:
    """A snapshot holding ``positions`` in the given order, ``carried`` naming carried rows."""
    return Snapshot(account, broker, at, {p.key: p for p in positions}, carried)


def change(before: Position | None, after: Position | None) -> Change:
    """The change from ``before`` to ``after``; the kind follows from which side is absent."""
    if before is None:
        assert after is not None
        return Change(ChangeKind.ADDED, after.key, None, after)
    if after is None:
        return Change(ChangeKind.REMOVED, before.key, before, None)
    return Change(ChangeKind.CHANGED, after.key, before, after)


def poll(
    current: Snapshot,
    *changes: Change,
    baseline: bool = False,
    new_day: bool = False,
) -> Poll:
    """A rule's view of one good poll, with explicitly listed changes."""
    return Poll(current, changes, baseline, new_day)


def drawdown_entry(peak: Number, fired_at: datetime | None = None) -> Tracked:
    """One subject's stored condition under default options: the day's ``peak``, and firing
    since ``fired_at`` (None: not firing)."""
    condition = INACTIVE if fired_at is None else Condition(None, fired_at, fired_at, None)
    return Tracked(condition, dec(peak))
