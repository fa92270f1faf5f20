"""Fault: the broker refuses the session mid-session (HTTP 401 or 403).

Expected: the daemon logs in again once inside the same poll, the poll succeeds, the change that
came with it is reported exactly once and nothing is invented.
"""

from __future__ import annotations

from tests.fakes import kotak_neo, samco, serve
from tests.reliability.harness import (
    SECRETS,
    Harness,
    kinds,
    kotak_account,
    pending_deliveries,
    samco_account,
    stored_alerts,
)


async def test_samco_401_mid_session_logs_in_once_and_loses_nothing(harness: Harness) -> None:
    """Samco answers 401 to a token it issued: one new login, the short reported once."""
    fake = samco.SamcoState(
        api_key=SECRETS["PM_REL_SAMCO_API_KEY"],
        api_secret=SECRETS["PM_REL_SAMCO_API_SECRET"],
        stale_answer="401",
    )
    async with serve(samco.make_app(fake)) as base:
        daemon = harness.daemon(harness.rules([samco_account(base)]))
        await daemon.started()
        await daemon.wait_event("baseline_taken")
        # The session ends and, behind it, RELIANCE has been sold short.
        fake.expire_sessions()
        fake.rows["DAY"] = [{**samco.RELIANCE_ROW, "transactionType": "SELL"}, samco.SBIN_SHORT_ROW]
        before = len(fake.calls("positions"))
        await daemon.wait_alerts(1)
        await daemon.wait_sample("position_monitor_polls_total", 6, account="s1", outcome="ok")
        polls_ok = await daemon.sample("position_monitor_polls_total", account="s1", outcome="ok")
        refused = await daemon.sample(
            "position_monitor_polls_total", account="s1", outcome="auth_expired"
        )
        assert await daemon.sigterm() == 0

    harness.watch(*fake.issued)
    assert len(fake.calls("login")) == 2, "one login at start, one after the 401"
    first, second = fake.issued
    tokens = [r.headers["x-session-token"] for r in fake.calls("positions")]
    assert set(tokens[:before]) == {first}
    after = tokens[before:]
    assert after == [first] + [second] * (len(after) - 1), "one refused call, then the new token"
    assert refused == 0 and polls_ok >= 6, "the refused poll healed within itself"
    assert not daemon.events("poll_failed")
    assert kinds(daemon.alerts()) == [("fresh-short", "RELIANCE")]
    assert daemon.alerts() == stored_alerts(harness.tmp / "state.db")
    assert pending_deliveries(harness.tmp / "state.db") == 0


KOTAK_LONG = kotak_neo.row(
    exSeg="nse_fo", tok="53179", prod="NRML", trdSym="BANKNIFTY21JULFUT",
    flBuyQty="25", buyAmt="2500.00",
)  # fmt: skip
KOTAK_SHORT = {**KOTAK_LONG, "flSellQty": "50", "sellAmt": "5000.00"}


async def test_kotak_403_mid_session_logs_in_once_and_loses_nothing(harness: Harness) -> None:
    """Kotak answers 403 "Invalid session": one new TOTP + MPIN login, the flip reported once."""
    fake = kotak_neo.KotakNeoState(
        access_token=SECRETS["PM_REL_KOTAK_ACCESS_TOKEN"],
        mobile_number=SECRETS["PM_REL_KOTAK_MOBILE"],
        ucc=SECRETS["PM_REL_KOTAK_UCC"],
        mpin=SECRETS["PM_REL_KOTAK_MPIN"],
        totp_secret=SECRETS["PM_REL_KOTAK_TOTP"],
        rows=[dict(KOTAK_LONG)],
        ltps={"nse_fo|53179": "101.20"},
    )
    async with serve(kotak_neo.make_app(fake)) as base:
        daemon = harness.daemon(harness.rules([kotak_account(base)]))
        await daemon.started()
        await daemon.wait_event("baseline_taken")
        fake.expire_sessions()  # stale sessions get the documented 403
        fake.rows[0] = dict(KOTAK_SHORT)
        await daemon.wait_alerts(1)
        await daemon.wait_sample("position_monitor_polls_total", 6, account="k1", outcome="ok")
        refused = await daemon.sample(
            "position_monitor_polls_total", account="k1", outcome="auth_expired"
        )
        assert await daemon.sigterm() == 0

    harness.watch(*(r.headers.get("Auth", "") for r in fake.requests))
    harness.watch(*(r.headers.get("sid", "") for r in fake.requests))
    assert len(fake.calls("login")) == 2 and len(fake.calls("validate")) == 2
    statuses = [r.status for r in fake.calls("positions")]
    assert statuses.count(403) == 1, statuses
    assert refused == 0
    assert not daemon.events("poll_failed")
    assert kinds(daemon.alerts()) == [("fresh-short", "BANKNIFTY21JULFUT")]
    assert daemon.alerts() == stored_alerts(harness.tmp / "state.db")
