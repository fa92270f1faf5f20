"""Immutable value types passed from the broker edge inward.

Money and quantities are ``Decimal``. Brokers send decimal strings ("2625.00", "1,550.00"),
thresholds are compared against sums of many positions, and binary floats would turn an exact
5000.00 drawdown into 4999.999999 and miss the alert. Decimal keeps every figure exactly as the
broker reported it; the cost is small next to decoding the body.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import overload

import msgspec

from monitor.printable import printable

ZERO = Decimal(0)


class PositionKey(msgspec.Struct, frozen=True, order=True, cache_hash=True, gc=False):
    """Identity of a position: the same token under two products is two positions.

    It reads as the tuple (account, exchange_segment, token, product): it unpacks, indexes and
    slices like one. Every poll makes one per row and looks it up in the previous snapshot and
    the rule states, so it is a frozen Struct that computes its hash once. A NamedTuple is a
    tuple subclass, which the garbage collector tracks for as long as it lives (it only untracks
    exact tuples): every key of every snapshot was walked by each full collection.
    """

    account: str
    exchange_segment: str
    token: str
    product: str

    def _fields(self) -> tuple[str, str, str, str]:
        return self.account, self.exchange_segment, self.token, self.product

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields())

    def __len__(self) -> int:
        return 4

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[str, ...]: ...
    def __getitem__(self, index: int | slice) -> str | tuple[str, ...]:
        return self._fields()[index]


class Position(msgspec.Struct, frozen=True, gc=False):
    """One row of a broker's positions, normalised.

    ``mtm`` is realized + unrealized P&L in the account currency, or ``None`` when it cannot be
    computed (an open position without a price).

    Every poll builds one per row and the diff compares each with its predecessor, so it is a
    frozen msgspec Struct rather than a dataclass: about ten times faster to build, three
    times faster to compare and smaller. It holds only a key tuple, strings and Decimals, which
    can form no reference cycle, so the cyclic garbage collector need not track it (gc=False).
    """

    key: PositionKey
    symbol: str
    net_qty: Decimal
    avg_price: Decimal | None
    ltp: Decimal | None
    realized: Decimal | None
    unrealized: Decimal | None
    mtm: Decimal | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every position of one account as one good poll saw it, in the broker's row order.

    ``carried`` names the rows the broker left out of this answer that are kept, as last
    reported, for this one poll (docs/architecture.md, "Rows that vanish"): they come after the
    reported rows, count in account sums and are not evaluated on their own.
    """

    account: str
    broker: str
    taken_at: datetime
    positions: Mapping[PositionKey, Position]
    carried: frozenset[PositionKey] = frozenset()

    def is_carried(self, key: PositionKey) -> bool:
        """Whether the row of ``key`` is carried from the previous poll, not reported now."""
        return key in self.carried

    def reported_positions(self) -> Iterable[Position]:
        """The rows the broker reported in this answer, in its order: every row but the carried."""
        if not self.carried:
            return self.positions.values()
        return [p for key, p in self.positions.items() if key not in self.carried]


class ChangeKind(enum.StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass(frozen=True, slots=True)
class Change:
    """How one key differs between two snapshots; ``before``/``after`` is None when absent."""

    kind: ChangeKind
    key: PositionKey
    before: Position | None
    after: Position | None


class Severity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Order for routing thresholds: info < warning < critical."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class AlertState(enum.StrEnum):
    """Whether an alert says a condition holds (every event alert too) or has ended."""

    FIRING = "firing"
    RESOLVED = "resolved"


DetailValue = Decimal | int | str | bool | None


@dataclass(frozen=True, slots=True)
class Alert:
    """What a rule decided a trader must hear about. ``key`` is None for account-wide alerts;
    ``state`` is resolved only on the alert that says a condition rule's condition has ended."""

    rule: str
    kind: str
    severity: Severity
    account: str
    key: PositionKey | None
    symbol: str | None
    at: datetime
    message: str
    details: Mapping[str, DetailValue]
    state: AlertState = AlertState.FIRING

    def to_line(self) -> str:
        """The one-line human form: time, severity (RESOLVED for a resolved alert), rule,
        account, message. A control character in a broker's text (a newline in a symbol) is
        written out, so it cannot start a line."""
        when = self.at.isoformat()
        word = self.state if self.state is AlertState.RESOLVED else self.severity
        line = f"{when} {word.upper():8} {self.rule} [{self.account}] {self.message}"
        return printable(line)

    def to_jsonl(self) -> str:
        """The alert JSON contract on one line, even for readers that also break lines at
        DEL, C1 controls and U+2028/U+2029 (JSON allows them raw; they are escaped here)."""
        text = json.dumps(self.to_json(), ensure_ascii=False, allow_nan=False)
        return _LINE_BREAKING.sub(lambda match: f"\\u{ord(match.group()):04x}", text)

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Alert:
        """Rebuild an alert from the contract form of ``to_json`` (as the outbox stores it). An
        alert stored before alerts had a ``state`` reads as firing: only firing ones existed."""
        segment, token, product = data["exchange_segment"], data["token"], data["product"]
        account = str(data["account"])
        key = None
        if segment is not None:
            key = PositionKey(account, str(segment), str(token), str(product))
        details = data["details"]
        if not isinstance(details, dict):
            raise TypeError("details must be an object")
        return cls(
            rule=str(data["rule"]),
            kind=str(data["kind"]),
            severity=Severity(str(data["severity"])),
            account=account,
            key=key,
            symbol=None if data["symbol"] is None else str(data["symbol"]),
            at=datetime.fromisoformat(str(data["at"])),
            message=str(data["message"]),
            details={name: _detail_value(value) for name, value in details.items()},
            state=AlertState(str(data.get("state", AlertState.FIRING))),
        )

    def to_json(self) -> dict[str, object]:
        """The alert JSON contract (README "Alert JSON"), field order included."""
        key = self.key
        return {
            "rule": self.rule,
            "kind": self.kind,
            "severity": str(self.severity),
            "state": str(self.state),
            "account": self.account,
            "exchange_segment": key.exchange_segment if key else None,
            "token": key.token if key else None,
            "product": key.product if key else None,
            "symbol": self.symbol,
            "at": self.at.isoformat(),
            "message": self.message,
            "details": {name: json_number(value) for name, value in self.details.items()},
        }


# Characters json.dumps leaves raw that some line readers (Python's splitlines) break at.
_LINE_BREAKING = re.compile("[\x7f-\x9f\u2028\u2029]")

# Figures up to this many integer digits print in full. The parsers bound every figure far
# below it (README "Brokers"); anything larger keeps its exponent, because writing out (or
# converting to int) "1E+999999" takes minutes.
_PLAIN_DIGITS = 30


def _plain(value: Decimal) -> bool:
    return value.is_finite() and value.adjusted() < _PLAIN_DIGITS


def _detail_value(value: DetailValue) -> DetailValue:
    """A JSON number read back as the Decimal it was written from; anything else as it is."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Decimal(str(value))
    return value


def json_number(value: DetailValue) -> object:
    """Render a Decimal as a JSON number: an int when integral, else a float; a figure beyond
    what prints plainly (or NaN, Infinity) as its text, a JSON string."""
    if isinstance(value, Decimal):
        if not _plain(value):
            return str(value)
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def format_qty(qty: Decimal) -> str:
    """Quantities print without a trailing '.0' when whole: 25, -25, 0.5."""
    if not qty:
        return "0"  # also -0 and 0E-40
    if not _plain(qty) or qty.adjusted() < -_PLAIN_DIGITS:
        return str(qty)  # 1E+40, 1E-40: the exponent, not forty zeros
    whole = qty.to_integral_value()
    return f"{whole:f}" if qty == whole else f"{qty.normalize():f}"


def format_money(amount: Decimal) -> str:
    """Money prints with grouping and two decimals: 12,500.00."""
    return f"{amount:,.2f}" if _plain(amount) else str(amount)
