"""The built-in simulator: a deterministic, seeded world that opens flat when the daemon starts
and at every later local midnight, with current contracts and a P&L of thousands to a lakh."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from monitor.brokers.simulator import Simulator, future_symbol

KOLKATA = ZoneInfo("Asia/Kolkata")
TICK = timedelta(seconds=5)
MIDNIGHT = datetime(2026, 11, 23, tzinfo=KOLKATA)
STARTED = datetime(2026, 1, 1, tzinfo=KOLKATA)  # long before: these days open at midnight


def simulator(
    seed: int = 7,
    account: str = "sim",
    timezone: ZoneInfo = KOLKATA,
    started: datetime = STARTED,
) -> Simulator:
    return Simulator(account, seed=seed, tick=TICK, timezone=timezone, started=started)


def at_tick(n: int, extra: timedelta = timedelta(0)) -> datetime:
    return MIDNIGHT + n * TICK + extra


def test_snapshot_carries_account_broker_and_instant():
    """A snapshot names the simulator account, broker "simulator" and the instant asked for."""
    when = at_tick(40, timedelta(seconds=2))

    snapshot = simulator(account="demo").snapshot_at(when)

    assert snapshot.account == "demo"
    assert snapshot.broker == "simulator"
    assert snapshot.taken_at == when
    assert snapshot.positions  # 40 ticks in, the cycle has opened positions
    assert {key.account for key in snapshot.positions} == {"demo"}


def test_same_seed_gives_equal_snapshots():
    """Two simulators with the same seed agree at the same instant (and are not trivially empty)."""
    when = at_tick(47, timedelta(seconds=3))

    first = simulator(seed=7).snapshot_at(when)
    second = simulator(seed=7).snapshot_at(when)

    assert first.positions
    assert first == second


def test_stepping_through_earlier_instants_equals_jumping_straight_there():
    """Advancing tick by tick reaches exactly the world a fresh jump to the instant computes."""
    stepped = simulator(seed=11)
    for n in range(60):
        stepped.snapshot_at(at_tick(n))
    target = at_tick(60, timedelta(seconds=1))

    walked = stepped.snapshot_at(target)
    jumped = simulator(seed=11).snapshot_at(target)

    assert walked.positions
    assert walked == jumped


def test_going_back_in_time_replays_the_same_world():
    """Asking for an earlier instant after a later one gives what a fresh simulator gives there."""
    sim = simulator(seed=3)
    sim.snapshot_at(at_tick(200))

    rewound = sim.snapshot_at(at_tick(30))

    assert rewound == simulator(seed=3).snapshot_at(at_tick(30))


def test_different_seed_gives_a_different_world():
    """Seeds 1 and 2 hold different positions after 60 ticks."""
    when = at_tick(60)

    one = simulator(seed=1).snapshot_at(when).positions
    two = simulator(seed=2).snapshot_at(when).positions

    assert one
    assert two
    assert one != two


def test_different_account_gives_a_different_world():
    """The account is part of the seed: two demo accounts do not mirror each other."""
    when = at_tick(60)

    first = simulator(seed=1, account="a").snapshot_at(when).positions
    second = simulator(seed=1, account="b").snapshot_at(when).positions

    assert [(k[1:], p.net_qty) for k, p in first.items()] != [
        (k[1:], p.net_qty) for k, p in second.items()
    ]


def test_world_is_flat_at_local_midnight():
    """At 00:00:00 local time the day has just begun: no positions at all."""
    assert simulator().snapshot_at(MIDNIGHT).positions == {}


def test_local_midnight_given_as_utc_instant_is_flat():
    """18:30 UTC is 00:00 in Kolkata: the day starts at local, not UTC, midnight."""
    utc_instant = datetime(2026, 11, 22, 18, 30, tzinfo=UTC)

    assert simulator().snapshot_at(utc_instant).positions == {}
    # one tick before, the previous Kolkata day is still trading
    assert simulator().snapshot_at(utc_instant - TICK).positions


def test_new_day_resets_a_world_that_was_running():
    """A simulator that ran through the evening starts flat again at the next local midnight."""
    sim = simulator(seed=5)
    evening = sim.snapshot_at(MIDNIGHT - TICK)

    assert evening.positions
    assert sim.snapshot_at(MIDNIGHT).positions == {}


@pytest.mark.parametrize("seed", [0, 1, 2, 7, 42])
def test_short_long_and_flat_rows_appear_within_60_ticks(seed):
    """Within the first 60 ticks some snapshot holds a short, a long and a flat row at once."""
    sim = simulator(seed=seed)

    for n in range(61):
        quantities = {p.net_qty for p in sim.snapshot_at(at_tick(n)).positions.values()}
        if any(q < 0 for q in quantities) and any(q > 0 for q in quantities) and 0 in quantities:
            break
    else:
        pytest.fail(f"seed {seed}: no snapshot with short, long and flat rows in 60 ticks")


def test_every_position_has_a_price_and_mtm():
    """Simulated rows are always priced, so account MTM is never unknown."""
    positions = simulator(seed=9).snapshot_at(at_tick(120)).positions

    assert positions
    for position in positions.values():
        assert isinstance(position.ltp, Decimal)
        assert position.ltp > 0
        assert isinstance(position.mtm, Decimal)


def test_snapshots_within_one_tick_are_equal():
    """Two instants inside the same tick see the same positions; the next tick may differ."""
    sim = simulator(seed=7)

    start = sim.snapshot_at(at_tick(50)).positions
    later_in_tick = sim.snapshot_at(at_tick(50, TICK - timedelta(microseconds=1))).positions

    assert start == later_in_tick


def test_dst_fall_back_hour_does_not_replay_the_world():
    """In a DST zone, 01:30 before and after the clocks go back are an hour apart: worlds differ."""
    london = ZoneInfo("Europe/London")
    sim = simulator(seed=7, timezone=london)
    first = datetime(2026, 10, 25, 1, 30, tzinfo=london, fold=0)
    second = datetime(2026, 10, 25, 1, 30, tzinfo=london, fold=1)
    # same wall time, but 00:30 UTC and 01:30 UTC: 720 ticks of 5 s apart

    assert sim.snapshot_at(first).positions != sim.snapshot_at(second).positions


@pytest.mark.parametrize("seed", [1, 7])
def test_the_days_mtm_swings_between_a_loss_and_a_profit_of_about_a_lakh(seed):
    """All day long the account's MTM stays within 2 lakh either way, yet reaches a loss and a
    profit of 50,000 (the bundled rules' limits): the market turns against the book and back,
    without drifting away."""
    sim = simulator(seed=seed)
    day = [
        sum(p.mtm for p in sim.snapshot_at(at_tick(n)).positions.values())
        for n in range(0, 86_400 // 5, 3)
    ]

    assert min(day) <= -50_000
    assert max(day) >= 50_000
    assert all(abs(mtm) < 200_000 for mtm in day)


def test_an_evening_start_opens_a_flat_book_that_trades_from_then_on():
    """Started at 19:40, the day's market opens then, not at midnight: flat at the start, a
    few positions a minute later, and the next day opens at midnight."""
    evening = MIDNIGHT + timedelta(hours=19, minutes=40)
    sim = simulator(seed=4, started=evening)

    assert sim.snapshot_at(evening).positions == {}
    later = sim.snapshot_at(evening + 12 * TICK)
    assert later.positions
    assert abs(sum(p.mtm for p in later.positions.values())) < 100_000
    assert sim.snapshot_at(MIDNIGHT + timedelta(days=1)).positions == {}
    assert sim.snapshot_at(MIDNIGHT + timedelta(days=1, minutes=1)).positions


@pytest.mark.parametrize(
    ("day", "nifty", "crude"),
    [
        (date(2025, 12, 1), "NIFTY25DECFUT", "CRUDEOIL25DECFUT"),
        (date(2025, 12, 30), "NIFTY25DECFUT", "CRUDEOIL26JANFUT"),  # the last Tuesday
        (date(2025, 12, 31), "NIFTY26JANFUT", "CRUDEOIL26JANFUT"),
        (date(2026, 11, 23), "NIFTY26NOVFUT", "CRUDEOIL26DECFUT"),
    ],
)
def test_futures_are_named_as_the_exchange_names_the_near_month(day, nifty, crude):
    """NSE futures roll after the month's last Tuesday, MCX crude oil after the 19th."""
    assert future_symbol("NIFTY", "nse_fo", day) == nifty
    assert future_symbol("CRUDEOIL", "mcx_fo", day) == crude


def test_positions_carry_the_current_contracts_names():
    """On 23 November 2026 the simulated futures are November's (crude oil December's)."""
    symbols = set()
    sim = simulator(seed=2)
    for n in range(0, 400, 5):
        symbols |= {p.symbol for p in sim.snapshot_at(at_tick(n)).positions.values()}

    futures = {s for s in symbols if s.endswith("FUT")}
    assert futures
    assert futures <= {"BANKNIFTY26NOVFUT", "NIFTY26NOVFUT", "CRUDEOIL26DECFUT"}
