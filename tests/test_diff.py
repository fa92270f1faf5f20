"""The pure snapshot diff: kinds, key identity, ordering, and properties over random snapshots."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from monitor.diff import diff
from monitor.model import Change, ChangeKind, Position, PositionKey, Snapshot
from tests.snapshots import T0, key, pos, snap


def test_added_removed_changed_and_unchanged_keys() -> None:
    """Each key is reported by its kind; an unchanged position produces nothing."""
    same, moved, gone, new = pos("1", 25), pos("2", 10), pos("3", 5), pos("4", 7)
    moved_now = pos("2", -10)
    changes = diff(snap(same, moved, gone), snap(same, moved_now, new))
    assert changes == [
        Change(ChangeKind.CHANGED, key("2"), moved, moved_now),
        Change(ChangeKind.ADDED, key("4"), None, new),
        Change(ChangeKind.REMOVED, key("3"), gone, None),
    ]


def test_any_field_difference_is_a_change() -> None:
    """A position whose quantity is the same but whose MTM moved is CHANGED."""
    before, after = pos("1", 25, mtm="100.00"), pos("1", 25, mtm="99.95")
    assert diff(snap(before), snap(after)) == [Change(ChangeKind.CHANGED, key("1"), before, after)]


def test_equal_decimals_in_another_notation_are_unchanged() -> None:
    """25 and 25.00 are the same quantity: a re-formatted broker number is not a change."""
    assert diff(snap(pos("1", "25", mtm="10")), snap(pos("1", "25.00", mtm="10.0"))) == []


def test_identical_snapshots_at_different_times_have_no_changes() -> None:
    """Only positions are compared, not the poll time."""
    positions = (pos("1", 25), pos("2", -5))
    later = T0 + timedelta(seconds=5)
    assert diff(snap(*positions), snap(*positions, at=later)) == []


def test_same_token_under_two_products_is_two_keys() -> None:
    """Invariant 2: token 53179 under MIS and under NRML are separate positions."""
    mis = pos("53179", 25, product="MIS")
    nrml = pos("53179", -25, product="NRML")
    assert diff(snap(mis), snap(mis, nrml)) == [
        Change(ChangeKind.ADDED, key("53179", product="NRML"), None, nrml)
    ]
    assert diff(snap(mis), snap(nrml)) == [
        Change(ChangeKind.ADDED, key("53179", product="NRML"), None, nrml),
        Change(ChangeKind.REMOVED, key("53179", product="MIS"), mis, None),
    ]


def test_same_token_under_two_segments_is_two_keys() -> None:
    """The exchange segment is part of the key as well."""
    nse, bse = pos("500325", 10, segment="nse_cm"), pos("500325", 10, segment="bse_cm")
    assert diff(snap(nse), snap(nse, bse)) == [
        Change(ChangeKind.ADDED, key("500325", segment="bse_cm"), None, bse)
    ]


def test_no_previous_snapshot_is_all_added_in_current_order() -> None:
    """diff(None, b) lists every position of b as ADDED, in b's row order."""
    rows = (pos("9", 1), pos("2", -3), pos("5", 0))
    assert diff(None, snap(*rows)) == [Change(ChangeKind.ADDED, p.key, None, p) for p in rows]


def test_no_previous_and_empty_current_is_empty() -> None:
    """An empty first snapshot has nothing to report."""
    assert diff(None, snap()) == []


def test_order_follows_current_snapshot_with_removals_last() -> None:
    """Added and changed keys come in the current row order; removals follow, in previous order."""
    a, b, c, d, e = (pos(t, 1) for t in "abcde")
    b2, d2 = pos("b", 2), pos("d", 2)
    f = pos("f", 1)
    changes = diff(snap(a, b, c, d, e), snap(f, d2, a, b2))
    assert [(ch.kind, ch.key.token) for ch in changes] == [
        (ChangeKind.ADDED, "f"),
        (ChangeKind.CHANGED, "d"),
        (ChangeKind.CHANGED, "b"),
        (ChangeKind.REMOVED, "c"),
        (ChangeKind.REMOVED, "e"),
    ]


def test_removal_found_when_sizes_balance() -> None:
    """One key swapped for another keeps the size equal and is still an add plus a removal."""
    a, b, c = pos("a", 1), pos("b", 1), pos("c", 1)
    assert diff(snap(a, b), snap(a, c)) == [
        Change(ChangeKind.ADDED, key("c"), None, c),
        Change(ChangeKind.REMOVED, key("b"), b, None),
    ]


def test_everything_removed() -> None:
    """An empty current snapshot reports every previous row as REMOVED."""
    a, b = pos("a", 1), pos("b", -1)
    assert diff(snap(a, b), snap()) == [
        Change(ChangeKind.REMOVED, key("a"), a, None),
        Change(ChangeKind.REMOVED, key("b"), b, None),
    ]


# Property tests over a small key space so that generated snapshots share keys.

_keys = st.builds(
    PositionKey,
    account=st.just("acct"),
    exchange_segment=st.sampled_from(["nse_fo", "bse_fo"]),
    token=st.sampled_from(["1", "2", "3"]),
    product=st.sampled_from(["MIS", "NRML"]),
)
_small = st.sampled_from([None, Decimal(0), Decimal(-25), Decimal(25), Decimal("12.50")])


@st.composite
def _positions(draw: st.DrawFn, k: PositionKey) -> Position:
    return Position(
        key=k,
        symbol=draw(st.sampled_from(["BANKNIFTY25DECFUT", "NIFTY25DECFUT"])),
        net_qty=draw(st.sampled_from([Decimal(-25), Decimal(0), Decimal(25)])),
        avg_price=draw(_small),
        ltp=draw(_small),
        realized=draw(_small),
        unrealized=draw(_small),
        mtm=draw(_small),
    )


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    """A snapshot over at most 12 possible keys, rows in a random order."""
    keys = draw(st.lists(_keys, unique=True, max_size=12))
    rows = [draw(_positions(k)) for k in keys]
    return Snapshot("acct", "sim", T0, {p.key: p for p in rows})


def apply(changes: Sequence[Change], positions: Mapping[PositionKey, Position]) -> dict:
    """Replay ``changes`` onto ``positions``, checking each change agrees with what it replaces."""
    result = dict(positions)
    for ch in changes:
        if ch.kind is ChangeKind.ADDED:
            assert ch.before is None
            assert ch.key not in result
            assert ch.after is not None
            result[ch.key] = ch.after
        elif ch.kind is ChangeKind.CHANGED:
            assert result[ch.key] == ch.before
            assert ch.after is not None
            assert ch.after != ch.before
            result[ch.key] = ch.after
        else:
            assert ch.after is None
            assert result.pop(ch.key) == ch.before
    return result


@given(snapshots())
def test_diff_of_a_snapshot_with_itself_is_empty(a: Snapshot) -> None:
    """diff(a, a) == [] for any snapshot."""
    assert diff(a, a) == []


@given(snapshots(), snapshots())
def test_applying_the_diff_gives_the_current_positions(a: Snapshot, b: Snapshot) -> None:
    """Applying diff(a, b) to a's positions gives exactly b's positions."""
    assert apply(diff(a, b), a.positions) == dict(b.positions)


@given(snapshots())
def test_applying_the_diff_from_nothing_gives_the_current_positions(b: Snapshot) -> None:
    """diff(None, b) rebuilds b from an empty book."""
    assert apply(diff(None, b), {}) == dict(b.positions)


@given(snapshots(), snapshots())
def test_diff_order_and_uniqueness(a: Snapshot, b: Snapshot) -> None:
    """Each key appears once; kept and added keys in b's order, then removed ones in a's."""
    changes = diff(a, b)
    keys = [ch.key for ch in changes]
    assert len(keys) == len(set(keys))
    present = [ch.key for ch in changes if ch.kind is not ChangeKind.REMOVED]
    removed = [ch.key for ch in changes if ch.kind is ChangeKind.REMOVED]
    assert keys == present + removed
    assert present == [k for k in b.positions if k in set(present)]
    assert removed == [k for k in a.positions if k not in b.positions]
