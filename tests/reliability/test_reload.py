"""Reloading rules.yaml under a running daemon: SIGHUP and ``POST /-/reload``.

Expected: a valid file applies at once (new rules alert, unchanged rules keep their state,
accounts removed stop polling and added ones start, a removed sink's pending alerts are parked
as ``sink_removed``); a broken one changes nothing, logs every problem and sets
``position_monitor_config_last_reload_successful`` to 0.
"""

from __future__ import annotations

import signal

import aiohttp

from tests.fakes import portfolio, serve
from tests.reliability.harness import (
    PORTFOLIO_TOKEN,
    Daemon,
    Harness,
    kinds,
    pf_row,
    portfolio_account,
    query,
    rules_document,
    until,
    write_rules,
)

CLOSED = {"name": "closed", "kind": "squared_off"}
SHORT = {"name": "fresh-short", "kind": "new_short"}
LOSS = {"name": "loss", "kind": "mtm_below", "threshold": -500}
RELOADED = "position_monitor_config_last_reload_successful"


def fake_with(net: str = "10", pnl: str = "0") -> portfolio.PortfolioState:
    """A portfolio account holding one RELIANCE row."""
    fake = portfolio.PortfolioState(token=PORTFOLIO_TOKEN)
    fake.rows = [pf_row("2885", "RELIANCE-EQ", net, pnl)]
    return fake


async def hup(daemon: Daemon, event: str = "config_reloaded") -> dict[str, object]:
    """SIGHUP; the next ``event`` log line."""
    count = len(daemon.events(event)) + 1
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGHUP)
    return await daemon.wait_event(event, count)


async def post_reload(daemon: Daemon) -> tuple[int, str]:
    """``POST /-/reload``: the status and the body."""
    url = f"http://127.0.0.1:{daemon.port_number}/-/reload"
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.post(url) as response:
        return response.status, await response.text()


async def test_sighup_starts_a_new_rule_and_a_broken_file_keeps_the_old_ones(
    harness: Harness,
) -> None:
    """A rule added by SIGHUP alerts without a restart; a broken file then changes nothing,
    logs every problem at once, and the reload gauge says so."""
    fake = fake_with()
    async with serve(portfolio.make_app(fake)) as base:
        config = harness.rules([portfolio_account(base)], rules=[CLOSED])
        daemon = harness.daemon(config)
        await daemon.started()
        await daemon.wait_event("baseline_taken")
        assert await daemon.sample(RELOADED) == 1

        write_rules(config, {**rules_document([portfolio_account(base)]), "rules": [CLOSED, SHORT]})
        reloaded = await hup(daemon)
        assert reloaded["rules_added"] == ["fresh-short"]
        fake.rows[0]["netQty"] = "-10"
        await daemon.wait_alerts(1)
        before = await daemon.sample(f"{RELOADED[:-10]}success_timestamp_seconds")

        broken = {**rules_document([portfolio_account(base)]), "rules": [
            CLOSED, {"name": "bad", "kind": "mtm_drawdown", "threshold": -5},
            {"name": "worse", "kind": "no_such_kind"},
        ]}  # fmt: skip
        write_rules(config, broken)
        failed = await hup(daemon, "config_reload_failed")
        assert await daemon.sample(RELOADED) == 0
        fake.rows[0]["netQty"] = "0"  # the rules it ran before still alert
        alerts = await daemon.wait_alerts(2)
        after = await daemon.sample(f"{RELOADED[:-10]}success_timestamp_seconds")
        assert await daemon.sigterm() == 0

    assert kinds(alerts) == [("fresh-short", "RELIANCE-EQ"), ("closed", "RELIANCE-EQ")]
    problems = failed["problems"]
    assert isinstance(problems, list) and len(problems) == 2, problems
    assert all(p.startswith(f"{config}: rule '") and "(line " in p for p in problems)
    assert before > 0 and after == before


async def test_an_unchanged_rule_keeps_its_state_and_a_changed_one_starts_afresh(
    harness: Harness,
) -> None:
    """A firing loss limit is not raised again by a reload that leaves it as it was; the same
    limit with another threshold is a new rule and fires anew."""
    fake = fake_with(pnl="-1000")
    async with serve(portfolio.make_app(fake)) as base:
        account = portfolio_account(base)
        config = harness.rules([account], rules=[LOSS])
        daemon = harness.daemon(config)
        await daemon.started()
        await daemon.wait_alerts(1)

        write_rules(config, {**rules_document([account]), "rules": [LOSS, SHORT]})
        await hup(daemon)
        seen = len(fake.requests)
        await until(lambda: len(fake.requests) >= seen + 3, "three polls after the reload")
        kept = list(daemon.alerts())

        changed = {**LOSS, "threshold": -900}
        write_rules(config, {**rules_document([account]), "rules": [changed, SHORT]})
        reloaded = await hup(daemon)
        alerts = await daemon.wait_alerts(2)
        assert await daemon.sigterm() == 0

    assert kinds(kept) == [("loss", None)]
    assert reloaded["rules_changed"] == ["loss"]
    assert kinds(alerts) == [("loss", None), ("loss", None)]


async def test_accounts_removed_stop_polling_and_added_ones_start(harness: Harness) -> None:
    """After the reload is logged the removed account's broker sees no request and its series
    are gone; the added account polls."""
    fakes = {name: fake_with() for name in ("p1", "p2", "p3")}
    async with (
        serve(portfolio.make_app(fakes["p1"])) as base1,
        serve(portfolio.make_app(fakes["p2"])) as base2,
        serve(portfolio.make_app(fakes["p3"])) as base3,
    ):
        accounts = [portfolio_account(base1, "p1"), portfolio_account(base2, "p2")]
        config = harness.rules(accounts)
        daemon = harness.daemon(config)
        await daemon.started()
        await until(lambda: fakes["p2"].requests, "p2 polled")
        assert 'account="p2"' in await daemon.metrics(), "the premise: p2 is exported"

        new = [portfolio_account(base1, "p1"), portfolio_account(base3, "p3")]
        write_rules(config, rules_document(new))
        reloaded = await hup(daemon)
        stopped_at = len(fakes["p2"].requests)
        seen = len(fakes["p1"].requests)
        await until(lambda: len(fakes["p3"].requests) >= 2, "p3 polled twice")
        await until(lambda: len(fakes["p1"].requests) >= seen + 2, "p1 still polling")
        text = await daemon.metrics()
        assert await daemon.sigterm() == 0

    assert (reloaded["accounts_added"], reloaded["accounts_removed"]) == (["p3"], ["p2"])
    assert len(fakes["p2"].requests) == stopped_at
    assert 'account="p2"' not in text and 'account="p3"' in text


async def test_a_removed_sink_leaves_its_pending_alerts_undeliverable(harness: Harness) -> None:
    """Alerts waiting for a Telegram chat that is unreachable are recorded as undeliverable
    with ``sink_removed`` when its entry leaves the file; the console goes on."""
    fake = fake_with()
    telegram = {
        "kind": "telegram", "name": "tg", "bot_token": "${PM_REL_TG_TOKEN}",
        "api_url": "http://127.0.0.1:1", "chats": [{"chat_id": "-1001234567890", "name": "desk"}],
    }  # fmt: skip
    console = {"kind": "console", "format": "json"}
    token = "123456:reload-test-token-abcdef"
    harness.watch(token)
    async with serve(portfolio.make_app(fake)) as base:
        account = portfolio_account(base)
        config = harness.rules([account], notify=[console, telegram])
        daemon = harness.daemon(config, env={"PM_REL_TG_TOKEN": token})
        await daemon.started()
        await daemon.wait_event("baseline_taken")
        fake.rows[0]["netQty"] = "-10"
        await daemon.wait_alerts(1)
        await daemon.wait_event("delivery_failing")

        write_rules(config, {**rules_document([account]), "notify": [console]})
        reloaded = await hup(daemon)
        fake.rows[0]["netQty"] = "0"
        await daemon.wait_alerts(2)
        assert await daemon.sigterm() == 0

    assert reloaded["sinks_removed"] == ["tg:desk"]
    rows = query(
        harness.tmp / "state.db",
        "SELECT a.rule, d.last_error, d.failed_at IS NOT NULL FROM deliveries d"
        " JOIN alerts a ON a.id = d.alert_id WHERE d.sink = 'tg:desk' ORDER BY a.id",
    )
    assert rows == [("fresh-short", "sink_removed", 1)]


async def test_post_reload_needs_lifecycle(harness: Harness) -> None:
    """Without ``daemon.lifecycle`` the endpoint answers 403 and reloads nothing; with it, 200
    on success and 500 with every problem on failure."""
    fake = fake_with()
    async with serve(portfolio.make_app(fake)) as base:
        account = portfolio_account(base)
        config = harness.rules([account], rules=[CLOSED])
        daemon = harness.daemon(config)
        await daemon.started()
        write_rules(config, {**rules_document([account]), "rules": [CLOSED, SHORT]})
        refused = await post_reload(daemon)
        assert not daemon.events("config_reloaded")

        lifecycle = {**rules_document([account]), "rules": [CLOSED], "daemon": {"lifecycle": True}}
        write_rules(config, lifecycle)
        await hup(daemon)
        write_rules(config, {**lifecycle, "rules": [CLOSED, SHORT]})
        applied = await post_reload(daemon)
        assert daemon.events("config_reloaded")[-1]["rules_added"] == ["fresh-short"]
        write_rules(config, {**lifecycle, "rules": [{"name": "x", "kind": "nope"}]})
        failed = await post_reload(daemon)
        assert await daemon.sigterm() == 0

    assert refused == (403, "Lifecycle API is not enabled.\n")
    assert applied[0] == 200
    status, body = failed
    assert status == 500 and body.startswith(f"{config}: rule 'x': kind: ")
