"""Rows a good answer left out: carried for one poll, removed only when the next one agrees.

Brokers answer a good poll with a row missing, or with an empty book ("No Data", "No Positions
Found"), and report the row again a poll later. Within a trading day a row missing from one good
answer is carried into that snapshot as last reported, so the account's MTM stays continuous and
no rule sees a square-off; the next good poll of the day that still lacks it removes it
(docs/architecture.md, "Rows that vanish").
"""

from __future__ import annotations

from monitor.model import Change, ChangeKind, Position, PositionKey, Snapshot


def carry_missing(
    previous: Snapshot | None, current: Snapshot, changes: list[Change], new_day: bool
) -> tuple[Snapshot, list[Change]]:
    """``current`` with the rows it left out carried in, and ``changes`` (its diff against
    ``previous``) without their removal.

    A row already carried by ``previous`` is not carried again: it has vanished, and its
    REMOVED change stands. Nothing is carried on the first poll of a new trading day, where
    missing rows are dropped silently. The carried rows follow the reported ones, in
    ``previous``'s order.

    The diff lists removals last and has already paid for finding them, so a poll that lost no
    row costs one look at the last change here.
    """
    if previous is None or new_day or not changes or changes[-1].kind is not ChangeKind.REMOVED:
        return current, changes
    carried: dict[PositionKey, Position] = {}
    kept: list[Change] = []
    for change in changes:
        if change.kind is ChangeKind.REMOVED and not previous.is_carried(change.key):
            assert change.before is not None  # noqa: S101 - a removed row has a before  # nosec B101
            carried[change.key] = change.before
        else:
            kept.append(change)
    if not carried:
        return current, changes
    positions = {**current.positions, **carried}
    snapshot = Snapshot(
        current.account, current.broker, current.taken_at, positions, frozenset(carried)
    )
    return snapshot, kept
