"""The pure snapshot diff: what changed between two polls of one account."""

from __future__ import annotations

from monitor.model import Change, ChangeKind, Snapshot


def diff(previous: Snapshot | None, current: Snapshot) -> list[Change]:
    """List added, changed and removed keys, in the current snapshot's row order.

    One dictionary lookup per position on each side: linear in the number of positions.
    Unchanged positions produce nothing. A client that found nothing changed hands back the
    very rows (or the very mapping) of its last poll: those are unchanged at a glance.
    """
    before = previous.positions if previous is not None else {}
    after = current.positions
    if before is after:
        return []
    changes: list[Change] = []
    append = changes.append
    added = 0
    for key, position in after.items():
        old = before.get(key)
        if old is None:
            added += 1
            append(Change(ChangeKind.ADDED, key, None, position))
        elif old is not position and old != position:
            append(Change(ChangeKind.CHANGED, key, old, position))
    # Every kept key is in both; if the counts balance, nothing was removed and the second
    # pass over the previous snapshot is skipped.
    if len(before) + added != len(after):
        for key, old in before.items():
            if key not in after:
                append(Change(ChangeKind.REMOVED, key, old, None))
    return changes
