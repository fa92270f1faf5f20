"""What every rule kind shares: the poll it sees, its filters, and the Rule protocol.

A rule is pure: ``evaluate(state, poll) -> (new state, alerts)``. It never reads the clock or
touches I/O; its state is stored by the caller, so a restart continues where it stopped.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from monitor.model import Alert, Change, DetailValue, Position, PositionKey, Severity, Snapshot


class RuleConfigError(ValueError):
    """A rule option is wrong; ``field`` names it for the config error line."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Poll:
    """One good poll of one account, as the rules see it."""

    snapshot: Snapshot
    changes: Sequence[Change]
    baseline: bool  # first poll with no stored state: nothing to compare against
    new_day: bool  # first poll of a new trading day: peaks reset, vanished rows are dropped
    # The rows that may differ from the previous snapshot of the same day: those in
    # ``changes`` and those whose carried flag turned on or off. None when there is no such
    # snapshot (a baseline, a new day) or the caller does not know: every row is then judged.
    changed_keys: frozenset[PositionKey] | None = None
    # Figures summed over the snapshot, by what was summed: rules that count the same rows
    # the same way (three account rules on MTM) share one pass over the rows per poll.
    sums: dict[Hashable, Decimal | None] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Globs:
    """Case-insensitive shell globs (``BANKNIFTY*``); an empty set matches everything."""

    patterns: tuple[str, ...] = ()
    _regex: re.Pattern[str] | None = None

    @classmethod
    def of(cls, patterns: Sequence[str]) -> Globs:
        """Compile the patterns once into one regular expression."""
        if not patterns:
            return cls()
        joined = "|".join(fnmatch.translate(p) for p in patterns)
        return cls(tuple(patterns), re.compile(joined, re.IGNORECASE))

    def match(self, value: str) -> bool:
        """True when no pattern is set or any pattern matches."""
        return self._regex is None or self._regex.match(value) is not None


@dataclass(frozen=True, slots=True)
class PositionFilter:
    """The optional filters every rule accepts: accounts, segments, products, symbols."""

    accounts: Globs = Globs()
    segments: Globs = Globs()
    products: Globs = Globs()
    symbols: Globs = Globs()

    @property
    def filters_positions(self) -> bool:
        """False when every position passes, so callers can skip per-position checks."""
        return any(g.patterns for g in (self.segments, self.products, self.symbols))

    def allows(self, position: Position) -> bool:
        """True when the position passes the segment, product and symbol filters."""
        key = position.key
        return (
            self.segments.match(key.exchange_segment)
            and self.products.match(key.product)
            and self.symbols.match(position.symbol)
        )


class Rule(Protocol):
    """A configured rule. Implementations are frozen dataclasses, one module per kind."""

    @property
    def name(self) -> str: ...
    @property
    def severity(self) -> Severity: ...
    @property
    def filter(self) -> PositionFilter: ...
    @property
    def kind(self) -> str: ...

    def evaluate(self, state: Any, poll: Poll) -> tuple[Any, list[Alert]]:
        """Return the rule's new state and the alerts this poll raises."""
        ...

    def dump_state(self, state: Any) -> object:
        """The state as plain JSON data for the store."""
        ...

    def load_state(self, account: str, data: object) -> Any:
        """The inverse of ``dump_state``, for the account that owns the stored state."""
        ...

    def dump_entries(self, before: Any, after: Any) -> Mapping[str, object | None] | None:
        """None for a state the store keeps whole (``dump_state``). A state kept one entry per
        position gives the entries of ``after`` that differ from ``before`` (every entry when
        ``before`` is None), by entry name, and None for an entry no longer kept: a poll then
        writes only the entries that moved."""
        ...

    def resting(self, state: Any) -> bool:
        """Whether a poll that changed no row, on the same trading day, would leave ``state``
        as it is and raise nothing, whatever its time: the engine then skips evaluating it."""
        ...


def position_alert(
    rule: Rule, poll: Poll, position: Position, message: str, details: Mapping[str, DetailValue]
) -> Alert:
    """An alert about one position, stamped with the poll's time."""
    return Alert(
        rule=rule.name,
        kind=rule.kind,
        severity=rule.severity,
        account=poll.snapshot.account,
        key=position.key,
        symbol=position.symbol,
        at=poll.snapshot.taken_at,
        message=message,
        details=details,
    )


def describe(position: Position) -> str:
    """How messages name a position: BANKNIFTY25DECFUT (nse_fo NRML)."""
    key = position.key
    where = " ".join(part for part in (key.exchange_segment, key.product) if part)
    return f"{position.symbol} ({where})"
