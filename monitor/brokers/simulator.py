"""The built-in simulator: a seeded market for the zero-configuration demo and for tests.

The world is a pure function of (seed, account, trading day, start, tick): the day the daemon
starts opens flat at that moment, every later day at local midnight, and each is stepped tick by
tick with a random generator seeded from those values. Starting with the daemon, not at
midnight, an evening start sees a fresh book with its peak at zero rather than a day of trades
it never watched; a restarted daemon therefore sees a new market (the rows of the old one are
squared off), which is what a demo should show.

Each tick prices take a mean-reverting random step, and every one to three ticks the next action
of a fixed cycle happens (open a short, open a long, a market move, flip a position, square one
off). A market move goes against every open position while the day's trend is falling and with
them while it is rising; the trend turns when the day's MTM reaches a loss or a profit of
``_SWING``. So at any hour the day's P&L is thousands to about a lakh, and it swings from a
loss to a profit and back every minute or two: every rule of the bundled rules.yaml fires within
the first few minutes of polling (the loss limit resolving too).
Positions are valued like Kotak rows: mtm = cash from trades + net_qty * ltp. Futures are named
as the exchange names the current month's contract (NIFTY25DECFUT), rolling to the next month
after the expiry.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import structlog

from monitor.model import Position, PositionKey, Snapshot

BROKER = "simulator"

log = structlog.get_logger(__name__)

# The market opens this long before the daemon starts: `snapshot` and the first poll see a book.
WARM_UP = timedelta(minutes=1)

# (exchange segment, token, symbol (a future's underlying), base price, lot size, products)
_INSTRUMENTS = (
    ("nse_fo", "53179", "BANKNIFTY", 52000.0, 30, ("NRML", "MIS")),
    ("nse_fo", "53001", "NIFTY", 24500.0, 75, ("NRML", "MIS")),
    ("nse_cm", "2885", "RELIANCE-EQ", 1450.0, 100, ("CNC", "MIS")),
    ("nse_cm", "2031", "M&M-EQ", 3100.0, 50, ("CNC", "MIS")),
    ("nse_cm", "1594", "INFY-EQ", 1650.0, 200, ("CNC", "MIS")),
    ("mcx_fo", "430106", "CRUDEOIL", 5900.0, 100, ("NRML",)),
)
_ACTIONS = (
    "open_short", "move", "square_off", "open_long", "move", "flip",
    "open_long", "move", "flip", "move", "square_off",
)  # fmt: skip
_MAX_OPEN = 5
_VOLATILITY = 0.0015  # per tick
_REVERSION = 0.02  # pull back towards the base price per tick
_MOVE = 0.012  # a market move against (or with) every open position
_SWING = 60_000.0  # the day's loss or profit at which the market's trend turns
_STEP = 20_000.0  # the most one market move changes the day's MTM by
_TUESDAY = 1
_MCX_CRUDE_EXPIRY_DAY = 19  # MCX crude oil futures expire around the 19th of the month
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def future_symbol(underlying: str, segment: str, day: date) -> str:
    """The trading symbol of the near-month future on ``day``: NSE contracts expire on the
    month's last Tuesday, MCX crude oil around the 19th; after that the next month trades."""
    if segment == "mcx_fo":
        expired = day.day > _MCX_CRUDE_EXPIRY_DAY
    else:
        month_end = (day.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        last_tuesday = month_end - timedelta(days=(month_end.weekday() - _TUESDAY) % 7)
        expired = day > last_tuesday
    year, month = day.year, day.month
    if expired:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return f"{underlying}{year % 100:02d}{_MONTHS[month - 1]}FUT"


@dataclass(slots=True)
class _Holding:
    qty: int = 0
    cash: float = 0.0  # sell value minus buy value of every trade today


@dataclass(slots=True)
class _World:
    day: date
    rng: random.Random
    tick: int = -1
    next_action_tick: int = 1
    action_index: int = 0
    falling: bool = True  # market moves go against the book (True) or with it
    prices: list[float] = field(default_factory=lambda: [i[3] for i in _INSTRUMENTS])
    holdings: dict[tuple[int, str], _Holding] = field(default_factory=dict)

    def step(self) -> None:
        self.tick += 1
        rng = self.rng
        for i, (*_, base, _lot, _products) in enumerate(_INSTRUMENTS):
            price = self.prices[i]
            price += _REVERSION * (base - price) + price * rng.gauss(0.0, _VOLATILITY)
            self.prices[i] = max(price, base * 0.5)
        if self.tick >= self.next_action_tick:
            self._act(_ACTIONS[self.action_index % len(_ACTIONS)])
            self.action_index += 1
            self.next_action_tick = self.tick + rng.randint(1, 3)

    def _act(self, action: str) -> None:
        rng = self.rng
        open_keys = sorted(k for k, h in self.holdings.items() if h.qty)
        if action.startswith("open") and len(open_keys) >= _MAX_OPEN:
            action = "square_off"
        if action in ("flip", "square_off", "move") and not open_keys:
            action = "open_short"
        if action == "move":
            mtm = sum(h.cash + h.qty * self.prices[i] for (i, _), h in self.holdings.items())
            if mtm <= -_SWING if self.falling else mtm >= _SWING:
                self.falling = not self.falling
            sign = 1 if self.falling else -1
            # At most _STEP of MTM per move, however large the book: the P&L stays near _SWING.
            exposure = sum(abs(self.holdings[k].qty) * self.prices[k[0]] for k in open_keys)
            fraction = min(_MOVE, _STEP / exposure)
            for index, product in open_keys:
                direction = 1 if self.holdings[(index, product)].qty > 0 else -1
                self.prices[index] *= 1 - sign * direction * fraction
        elif action.startswith("open"):
            flat = [
                (i, product)
                for i, instrument in enumerate(_INSTRUMENTS)
                for product in instrument[5]
                if not self.holdings.get((i, product), _Holding()).qty
            ]
            index, product = rng.choice(flat)
            lots = rng.randint(1, 3) * _INSTRUMENTS[index][4]
            self._trade(index, product, -lots if action == "open_short" else lots)
        else:
            index, product = rng.choice(open_keys)
            qty = self.holdings[(index, product)].qty
            self._trade(index, product, -2 * qty if action == "flip" else -qty)

    def _trade(self, index: int, product: str, qty: int) -> None:
        holding = self.holdings.setdefault((index, product), _Holding())
        holding.qty += qty
        holding.cash -= qty * self.prices[index]


class Simulator:
    """A broker whose positions come from the seeded world instead of the network."""

    def __init__(
        self, account: str, *, seed: int, tick: timedelta, timezone: ZoneInfo, started: datetime
    ) -> None:
        self.account = account
        self._seed = seed
        self._tick = tick
        self._tz = timezone
        self._started = started  # the first day's market opens here, later days at midnight
        self._world: _World | None = None
        log.info("simulator_opened", account=account, opens_at=started.isoformat())

    last_exchange = None  # nothing comes off a wire, so there is nothing to record

    async def fetch(self) -> Snapshot:
        """Positions as of now, stamped in the account's zone like every alert time."""
        return self.snapshot_at(datetime.now(self._tz))

    async def close(self) -> None:
        """Nothing to release: the simulator holds no connections."""

    def snapshot_at(self, taken_at: datetime) -> Snapshot:
        """Positions as the world stands at ``taken_at`` (deterministic for a given seed)."""
        day = taken_at.astimezone(self._tz).date()
        day_start = datetime.combine(day, time(), self._tz)
        if self._started.astimezone(self._tz).date() == day:
            day_start = self._started
        # Elapsed real time: subtracting two times of one zone would count wall-clock time,
        # which repeats or skips an hour where the zone changes its clocks. Before the start
        # the target is negative: a flat book.
        target = (taken_at.astimezone(UTC) - day_start.astimezone(UTC)) // self._tick
        world = self._world
        if world is None or world.day != day or world.tick > target:
            world = self._world = _World(day, random.Random(f"{self._seed}:{self.account}:{day}"))  # noqa: S311 - a simulation, not security  # nosec B311
        while world.tick < target:
            world.step()
        return Snapshot(self.account, BROKER, taken_at, self._positions(world))

    def _positions(self, world: _World) -> dict[PositionKey, Position]:
        positions: dict[PositionKey, Position] = {}
        for (index, product), holding in world.holdings.items():
            segment, token, symbol, *_ = _INSTRUMENTS[index]
            if segment != "nse_cm":
                symbol = future_symbol(symbol, segment, world.day)
            key = PositionKey(self.account, segment, token, product)
            ltp = round(world.prices[index], 2)
            positions[key] = Position(
                key=key,
                symbol=symbol,
                net_qty=Decimal(holding.qty),
                avg_price=None,
                ltp=Decimal(f"{ltp:.2f}"),
                realized=None,
                unrealized=None,
                mtm=Decimal(f"{holding.cash + holding.qty * ltp:.2f}"),
            )
        return positions
