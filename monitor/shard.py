"""Which replica polls which account when the accounts are split across N daemons.

Rendezvous (highest random weight) hashing: every shard scores every account id with a stable
hash of (shard index, id), and the account belongs to the shard with the highest score. Going
from N to N+1 shards moves only the accounts the new shard outscores, about 1/(N+1) of them,
and each of those moves to the new shard (README, "Run with Kubernetes"). The hash is BLAKE2b,
never Python's ``hash()``, which is salted per process: every replica, and ``position-monitor
shards``, must agree on the assignment.

Pure: the ordinal of ``auto/N`` comes in as the pod's name, read by the command line.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

# A StatefulSet names its pods NAME-<ordinal>.
_POD_ORDINAL = re.compile(r"-(0|[1-9][0-9]*)\Z")
_SHARD = re.compile(r"(?P<index>[0-9]+|auto)/(?P<count>[0-9]+)\Z")
MAX_SHARDS = 1024  # a bound that keeps one account's scoring cheap; far past any deployment


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


Account = TypeVar("Account", bound=_Identified)


class ShardError(ValueError):
    """A ``--shard`` value or pod name that names no shard: the message says why."""


@dataclass(frozen=True, slots=True)
class Shard:
    """This daemon's share: shard ``index`` of ``count`` (0 <= index < count)."""

    index: int = 0
    count: int = 1

    def owns(self, account: str) -> bool:
        """Whether ``account`` is polled by this shard."""
        return self.count == 1 or owner(account, self.count) == self.index

    def select(self, accounts: Iterable[Account]) -> tuple[Account, ...]:
        """The accounts of this shard, in the order given."""
        return tuple(account for account in accounts if self.owns(account.id))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


WHOLE = Shard()  # one daemon polling every account


def owner(account: str, count: int) -> int:
    """The shard, of ``count``, that account id ``account`` belongs to."""
    ident = account.encode()
    scores = [_score(index, ident) for index in range(count)]
    return scores.index(max(scores))  # a tie of 64-bit scores goes to the lower index


def assign(accounts: Iterable[str], count: int) -> list[tuple[str, int]]:
    """Each account with its shard of ``count``, in the order given."""
    return [(account, owner(account, count)) for account in accounts]


def _score(index: int, ident: bytes) -> int:
    digest = hashlib.blake2b(index.to_bytes(4, "big") + ident, digest_size=8).digest()
    return int.from_bytes(digest, "big")


def parse_count(text: str) -> int:
    """A shard count: a whole number from 1 to MAX_SHARDS, in ASCII digits (``isdigit`` alone
    takes a superscript two, which ``int`` refuses)."""
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_SHARDS:
        raise ShardError(f"{text!r}: the number of shards must be a whole number 1 to {MAX_SHARDS}")
    return int(text)


def parse(text: str, pod_name: str | None) -> Shard:
    """``I/N`` (0 <= I < N), or ``auto/N`` with I the ordinal ending ``pod_name``
    (a StatefulSet's ``NAME-<ordinal>``)."""
    match = _SHARD.match(text)
    if match is None:
        raise ShardError(f"{text!r}: expected I/N (0 <= I < N) or auto/N")
    count = parse_count(match["count"])
    if match["index"] != "auto":
        index = int(match["index"])
        if index >= count:
            raise ShardError(f"{text!r}: shard index {index} must be below the count {count}")
        return Shard(index, count)
    if not pod_name:
        raise ShardError(f"{text!r}: no pod name to take the ordinal from (POD_NAME, hostname)")
    ordinal = _POD_ORDINAL.search(pod_name)
    if ordinal is None:
        raise ShardError(f"{text!r}: pod name {pod_name!r} does not end in -<ordinal>")
    index = int(ordinal[1])
    if index >= count:
        raise ShardError(
            f"{text!r}: pod {pod_name!r} is ordinal {index}, but there are {count} shards:"
            " set N to the StatefulSet's replicas"
        )
    return Shard(index, count)
