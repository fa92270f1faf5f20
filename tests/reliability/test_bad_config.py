"""Fault: a bad rules.yaml, at start and edited under a running daemon.

Expected at start: exit status 2, one line per problem naming the file, the owner, the field, the
reason and the line, no state file, no request to the broker. While running: an edit changes
nothing until the next start or reload (SIGHUP), and the reload of a broken file logs every
problem and keeps the daemon running on the config it had.
"""

from __future__ import annotations

import signal

from tests.fakes import portfolio, serve
from tests.reliability.harness import (
    PORTFOLIO_TOKEN,
    Harness,
    kinds,
    portfolio_account,
    stored_alerts,
    until,
)

LITERAL = "pasted-token-value-5e6f7a8b"  # a credential pasted into the file by mistake


def bad_files(base: str) -> dict[str, tuple[str, list[str]]]:
    """Broken rules files and the lines the daemon must print for each ({} is the path)."""
    good_account = (
        f"  - id: p1\n    broker: portfolio\n    base_url: {base}\n    window: always\n"
        '    credentials: {token: "${PM_REL_PORTFOLIO_TOKEN}"}\n'
    )
    return {
        "syntax": (
            "rules:\n  - name: closed\n    kind: [squared_off\n",
            ["{}: invalid YAML: expected ',' or ']', but got '<stream end>' (line 4, column 1)"],
        ),
        "several": (
            "accounts:\n"
            f"{good_account}"
            "  - id: p2\n    broker: kotak\n"
            "  - id: p3\n    broker: portfolio\n    base_url: http://127.0.0.1:1\n"
            f"    credentials: {{token: {LITERAL}}}\n"
            "rules:\n  - name: dd\n    kind: mtm_drawdown\n    threshold: -5\n",
            [
                "{}: account 'p2': broker: unknown broker 'kotak'; expected one of kotak_neo,"
                " portfolio, samco, alphapoint, torus, simulator (line 8)",
                "{}: account 'p3': credentials.token: must be an environment reference such as"
                ' "${{KOTAK_ACCESS_TOKEN}}" (line 12)',
                "{}: rule 'dd': threshold: must be a positive amount; got -5 (line 16)",
            ],
        ),
        "duplicate key": (
            f"accounts:\n{good_account}"
            "rules:\n  - name: closed\n    kind: squared_off\n    kind: new_short\n",
            ["{}: invalid YAML: duplicate key 'kind' (line 10, column 5)"],
        ),
        "unset variable": (
            f"accounts:\n{good_account.replace('PM_REL_PORTFOLIO_TOKEN', 'PM_REL_UNSET')}"
            "rules:\n  - name: closed\n    kind: squared_off\n",
            ["{}: account 'p1': credentials.token: environment variable PM_REL_UNSET is not set"],
        ),
    }


async def test_bad_rules_at_start_are_refused_with_every_problem(harness: Harness) -> None:
    """Exit 2, the problems in file order, no state file, no poll, the literal not echoed."""
    fake = portfolio.PortfolioState(token=PORTFOLIO_TOKEN)
    async with serve(portfolio.make_app(fake)) as base:
        for name, (text, expected) in bad_files(base).items():
            path = harness.tmp / f"{name.replace(' ', '-')}.yaml"
            path.write_text(text)
            state = harness.tmp / f"{path.stem}.db"
            daemon = harness.daemon(path, state)
            assert await daemon.exit_code() == 2, name
            assert daemon.log_lines == [line.format(path) for line in expected], name
            assert not state.exists(), name
    assert fake.requests == []
    assert all(LITERAL not in line for d in harness.daemons for line in d.log_lines)


async def test_edits_while_running_change_nothing_until_restart(harness: Harness) -> None:
    """rules.yaml broken under the daemon, then SIGHUP: the problem logged, still polling and
    alerting on the rules it started with; the next start refuses the broken file."""
    fake = portfolio.PortfolioState(token=PORTFOLIO_TOKEN)
    async with serve(portfolio.make_app(fake)) as base:
        config = harness.rules([portfolio_account(base)])
        daemon = harness.daemon(config)
        await daemon.started()
        await daemon.wait_event("baseline_taken")

        config.write_text(config.read_text().replace("kind: new_short", "kind: [new_short"))
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGHUP)
        hup = await daemon.wait_event("config_reload_failed")
        fake.rows[0]["netQty"] = "-10"
        await daemon.wait_alerts(1)
        seen = len(fake.requests)
        await until(lambda: len(fake.requests) >= seen + 2, "two more polls")
        assert await daemon.sigterm() == 0

        restarted = harness.daemon(config)
        assert await restarted.exit_code() == 2

    assert hup["level"] == "error" and hup["config"] == str(config)
    assert [p.split(": invalid YAML: ")[0] for p in hup["problems"]] == [str(config)]
    assert kinds(daemon.alerts()) == [("fresh-short", "RELIANCE-EQ")]
    assert daemon.alerts() == stored_alerts(harness.tmp / "state.db")
    [line] = restarted.log_lines
    assert line.startswith(f"{config}: invalid YAML: ")
