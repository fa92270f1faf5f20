"""Generated Kotak Neo positions bodies: the seed's field set with realistic values.

``make_data(n)`` gives a first body of ``n`` rows, a next body in which 5% of the rows changed
(a fill moved their quantities and traded amounts), and the last price of every instrument as
the quotes call returns it. The changed rows are a realistic mix: some positions turn short,
some are squared off, the rest add to what they hold. The same seed gives the same bytes.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from decimal import Decimal

from tests.fakes.kotak_neo import SEED_ROW

CHANGED_SHARE = 0.05

Row = dict[str, str]

# segment, share of the rows, products, lot sizes, price range
_SEGMENTS = (
    ("nse_fo", 0.55, ("NRML", "MIS"), (15, 25, 50, 75), (50.0, 50_000.0)),
    ("nse_cm", 0.25, ("CNC", "MIS"), (1,), (10.0, 4_000.0)),
    ("bse_cm", 0.10, ("CNC", "MIS"), (1,), (10.0, 4_000.0)),
    ("mcx_fo", 0.10, ("NRML",), (1, 10, 100), (100.0, 90_000.0)),
)
_UNDERLYINGS = ("NIFTY", "BANKNIFTY", "FINNIFTY", "RELIANCE", "INFY", "TCS", "HDFCBANK", "SBIN")


@dataclass(frozen=True, slots=True)
class BenchData:
    """Two consecutive polls of one account and the prices that price them."""

    first: bytes
    second: bytes
    quotes: dict[str, Decimal]  # "exSeg:tok" -> last price, as the live client keys them
    rows: int
    changed: int  # rows of ``second`` that differ from ``first``


def make_data(n: int, seed: int = 7) -> BenchData:
    """``n`` positions and a next poll in which 5% of them changed."""
    rng = random.Random(seed)
    rows = make_rows(rng, n)
    changed = rng.sample(range(n), round(n * CHANGED_SHARE))
    return BenchData(
        body(rows), body(filled(rows, changed)), make_quotes(rng, rows), n, len(changed)
    )


@dataclass(frozen=True, slots=True)
class Alternating:
    """A first poll, then two bodies to alternate between: each differs from the other in 5%
    of the rows, and each turns some positions short that the other holds long or flat."""

    first: bytes
    odd: bytes
    even: bytes
    quotes: dict[str, Decimal]


def make_alternating(n: int, seed: int = 11) -> Alternating:
    """``n`` positions; ``odd`` and ``even`` trade on disjoint halves of a 5% sample."""
    rng = random.Random(seed)
    rows = make_rows(rng, n)
    changed = rng.sample(range(n), round(n * CHANGED_SHARE))
    half = len(changed) // 2
    return Alternating(
        body(rows),
        body(filled(rows, changed[:half])),
        body(filled(rows, changed[half:])),
        make_quotes(rng, rows),
    )


def make_rows(rng: random.Random, n: int, first_token: int = 10_000) -> list[Row]:
    """``n`` positions rows with distinct keys, about a fifth of them already flat."""
    return [_row(rng, first_token + index) for index in range(n)]


def make_quotes(rng: random.Random, rows: list[Row]) -> dict[str, Decimal]:
    """A last price near each row's strike price, keyed ``exSeg:tok``."""
    return {
        f"{r['exSeg']}:{r['tok']}": Decimal(f"{float(r['stkPrc']) * rng.uniform(0.98, 1.02):.2f}")
        for r in rows
    }


def filled(rows: list[Row], indexes: list[int]) -> list[Row]:
    """A copy of ``rows`` in which the rows at ``indexes`` traded (see ``_fill``)."""
    copy = list(rows)
    for index in indexes:
        copy[index] = _fill(rows[index], index)
    return copy


def body(rows: list[Row]) -> bytes:
    """The positions response carrying ``rows``, as the seed writes it."""
    return json.dumps({"stat": "Ok", "stCode": 200, "data": rows}).encode()


def net_qty(row: Row) -> int:
    """(flBuyQty + cfBuyQty) - (flSellQty + cfSellQty)."""
    return (int(row["flBuyQty"]) + int(row["cfBuyQty"])) - (
        int(row["flSellQty"]) + int(row["cfSellQty"])
    )


def _row(rng: random.Random, token: int) -> Row:
    pick = rng.random()
    for segment, share, products, lots, (low, high) in _SEGMENTS:  # noqa: B007 - used after
        pick -= share
        if pick <= 0:
            break
    lot = rng.choice(lots)
    price = rng.uniform(low, high)
    bought = lot * rng.randint(0, 40)
    sold = bought if rng.random() < 0.2 else lot * rng.randint(0, 40)
    underlying = rng.choice(_UNDERLYINGS)
    fno = segment.endswith("_fo")
    return {
        **SEED_ROW,
        "exSeg": segment,
        "tok": str(token),
        "prod": rng.choice(products),
        "trdSym": f"{underlying}26DEC{token}{'FUT' if fno else '-EQ'}",
        "sym": underlying,
        "type": "FUTIDX" if fno else "EQ",
        "series": "XX" if fno else "EQ",
        "flBuyQty": str(bought),
        "flSellQty": str(sold),
        "buyAmt": f"{bought * price:.2f}",
        "sellAmt": f"{sold * price * rng.uniform(0.97, 1.03):.2f}",
        "lotSz": str(lot),
        "brdLtQty": str(lot),
        "stkPrc": f"{price:.2f}",
    }


def _fill(row: Row, index: int) -> Row:
    """The row after a trade: every fourth index turns short, the next squares off, the other
    two buy two more lots."""
    lot, price = int(row["lotSz"]), float(row["stkPrc"])
    held = net_qty(row)
    match index % 4:
        case 0:
            side, qty = "Sell", max(held, 0) + 2 * lot
        case 1 if held > 0:
            side, qty = "Sell", held
        case 1 if held < 0:
            side, qty = "Buy", -held
        case _:
            side, qty = "Buy", 2 * lot
    amount = f"{side.lower()}Amt"
    return {
        **row,
        f"fl{side}Qty": str(int(row[f"fl{side}Qty"]) + qty),
        amount: f"{float(row[amount]) + qty * price:.2f}",
    }
