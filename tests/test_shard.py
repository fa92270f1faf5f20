"""Rendezvous hashing of accounts onto shards, and the ``--shard`` grammar."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import pytest

from monitor import shard
from monitor.shard import Shard, ShardError

IDS = [f"client-{n:05d}" for n in range(10_000)]


def test_every_account_belongs_to_exactly_one_shard() -> None:
    for count in (1, 2, 3, 7):
        shards = [Shard(index, count) for index in range(count)]
        for account in IDS[:2_000]:
            owners = [s.index for s in shards if s.owns(account)]
            assert owners == [shard.owner(account, count)]


def test_the_assignment_is_pinned_across_processes_and_versions() -> None:
    # Replicas and `position-monitor shards` agree only on a stable hash: a change here would
    # move accounts between shards on an upgrade, so it must be deliberate.
    assert shard.assign(["alice", "bob", "carol", "dave", "simulator"], 3) == [
        ("alice", 2),
        ("bob", 0),
        ("carol", 1),
        ("dave", 1),
        ("simulator", 0),
    ]


def _within_binomial(observed: int, trials: int, p: float) -> bool:
    """Whether ``observed`` lies within six standard deviations of a Binomial(trials, p) mean:
    a false failure is about one in five hundred million."""
    spread = 6 * math.sqrt(trials * p * (1 - p))
    return abs(observed - trials * p) <= spread


def test_shards_share_the_accounts_evenly() -> None:
    counts = Counter(index for _, index in shard.assign(IDS, 3))
    assert sorted(counts) == [0, 1, 2]
    for index in range(3):
        assert _within_binomial(counts[index], len(IDS), 1 / 3), counts


def test_a_fourth_shard_takes_about_a_quarter_and_nothing_else_moves() -> None:
    before = dict(shard.assign(IDS, 3))
    after = dict(shard.assign(IDS, 4))
    moved = [account for account in IDS if before[account] != after[account]]
    assert _within_binomial(len(moved), len(IDS), 1 / 4), len(moved)
    assert {after[account] for account in moved} == {3}  # only onto the new shard


def test_one_shard_owns_everything() -> None:
    assert all(shard.WHOLE.owns(account) for account in IDS[:100])
    assert {index for _, index in shard.assign(IDS[:100], 1)} == {0}


@dataclass(frozen=True)
class _Account:
    id: str


def test_select_keeps_the_shards_accounts_in_file_order() -> None:
    accounts = [_Account(a) for a in ("alice", "bob", "carol", "dave", "simulator")]
    assert Shard(1, 3).select(accounts) == (_Account("carol"), _Account("dave"))
    assert Shard(0, 3).select([]) == ()


@pytest.mark.parametrize(
    ("text", "pod", "expected"),
    [
        ("0/1", None, Shard(0, 1)),
        ("2/3", None, Shard(2, 3)),
        ("auto/3", "position-monitor-0", Shard(0, 3)),
        ("auto/4", "position-monitor-3", Shard(3, 4)),
        ("auto/12", "pm-10", Shard(10, 12)),
    ],
)
def test_shard_values(text: str, pod: str | None, expected: Shard) -> None:
    assert shard.parse(text, pod) == expected


@pytest.mark.parametrize(
    ("text", "pod", "reason"),
    [
        ("3/3", None, "shard index 3 must be below the count 3"),
        ("0/0", None, "must be a whole number 1 to 1024"),
        ("1", None, "expected I/N"),
        ("-1/3", None, "expected I/N"),
        ("a/3", None, "expected I/N"),
        ("auto/3", "position-monitor", "does not end in -<ordinal>"),
        ("auto/3", "position-monitor-01", "does not end in -<ordinal>"),
        ("auto/3", "position-monitor-3", "ordinal 3, but there are 3 shards"),
        ("auto/3", "", "no pod name"),
    ],
)
def test_bad_shard_values_say_why(text: str, pod: str | None, reason: str) -> None:
    with pytest.raises(ShardError, match=reason.replace("(", r"\(")):
        shard.parse(text, pod)


@pytest.mark.parametrize("text", ["\u00b2", "\u0663", "\uff13", "3\u00b2"])
def test_a_count_in_digits_other_than_ascii_is_refused_with_the_reason(text: str) -> None:
    # str.isdigit() says yes to a superscript two, which int() then refuses with its own error.
    with pytest.raises(ShardError, match="must be a whole number 1 to 1024"):
        shard.parse_count(text)
