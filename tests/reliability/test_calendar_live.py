"""Exchange calendars in the running daemon: on an NSE holiday where MCX trades its evening.

The daemon runs with libfaketime preloaded, its wall clock on Holi, 2026-03-03, India time:
NSE is closed all day; MCX closes its morning session and trades the evening. An account with
``window: always`` polls throughout, so its polls show time passing. At 11:00 (NSE's hours on
any other Tuesday) neither windowed account polls beyond its one end-of-day poll at start (the
close each missed was the previous trading day's); at 18:00 the mcx account polls at its
interval and the nse account still does not. The old ``holidays:`` list in the file is logged
as a warning naming its replacement.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from tests.fakes import portfolio, serve
from tests.reliability.harness import PORTFOLIO_TOKEN, Harness, pf_row, portfolio_account, until
from tests.reliability.test_clock import FakeClock

IST = ZoneInfo("Asia/Kolkata")
HOLI_MORNING = datetime(2026, 3, 3, 11, 0, tzinfo=IST)
HOLI_EVENING = datetime(2026, 3, 3, 18, 0, tzinfo=IST)
POLLS = "position_monitor_polls_total"


async def test_an_nse_holiday_skips_the_nse_account_while_mcx_polls_its_evening(
    harness: Harness,
) -> None:
    """Same broker, same interval: only the window's calendar tells the accounts apart."""
    clock = FakeClock(harness.tmp / "faketime")
    clock.set(HOLI_MORNING)
    row = pf_row("11536", "RELIANCE-EQ", "10", "100.00")
    equity, commodity, crypto = (
        portfolio.PortfolioState(token=PORTFOLIO_TOKEN, rows=[row]) for _ in range(3)
    )
    async with (
        serve(portfolio.make_app(equity)) as nse,
        serve(portfolio.make_app(commodity)) as mcx,
        serve(portfolio.make_app(crypto)) as always,
    ):
        config = harness.rules(
            [
                portfolio_account(nse, "equity", window="nse"),
                portfolio_account(mcx, "commodity", window="mcx"),
                portfolio_account(always, "crypto", window="always"),
            ],
            timezone="Asia/Kolkata",
            holidays=[datetime(2026, 12, 24).date()],
        )
        daemon = harness.daemon(config, env=clock.environment())
        await daemon.started()
        await until(lambda: len(crypto.requests) >= 6, "six polls of the always account", 60)
        morning = len(equity.requests), len(commodity.requests)

        clock.set(HOLI_EVENING)
        await until(lambda: len(commodity.requests) >= 7, "six polls of the mcx evening", 60)
        await daemon.wait_sample(POLLS, 7, account="commodity", outcome="ok")
        equity_polls = await daemon.sample(POLLS, account="equity", outcome="ok")
        assert await daemon.sigterm() == 0

    assert morning == (1, 1), "only the end-of-day polls at start while both were closed"
    assert len(equity.requests) == 1, "no nse poll on Holi, morning or evening"
    assert equity_polls == 1
    [warning] = daemon.events("config_warning")
    assert warning["level"] == "warning"
    assert "holidays: deprecated" in warning["problem"]
    assert "calendars.nse.holidays_add" in warning["problem"]
    started = datetime.fromisoformat(daemon.events("daemon_started")[0]["timestamp"])
    assert started.astimezone(IST).date() == HOLI_MORNING.date(), "the premise: Holi's clock"
