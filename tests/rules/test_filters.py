"""Rule filters (accounts, segments, products, symbols globs) and building rules by kind."""

from __future__ import annotations

from decimal import Decimal

import pytest

from monitor.model import Severity
from monitor.pipeline import evaluate_poll
from monitor.rules.base import Globs, PositionFilter, RuleConfigError
from monitor.rules.conditions import Scope
from monitor.rules.lifecycle import Lifecycle
from monitor.rules.mtm_drawdown import MtmDrawdown
from monitor.rules.new_short import NewShort
from monitor.rules.registry import RULE_KINDS
from monitor.rules.squared_off import SquaredOff
from tests.snapshots import IST, change, drawdown_entry, key, poll, pos, snap


def shorts(flt: PositionFilter, *rows: tuple[str, str, str, str]) -> list[str]:
    """Tokens a new_short rule with ``flt`` reports when (token, segment, product, symbol)
    rows all go from 0 to -1."""
    rule = NewShort("s", Severity.WARNING, flt)
    changes = []
    after_rows = []
    for token, segment, product, symbol in rows:
        old = pos(token, 0, segment=segment, product=product, symbol=symbol)
        new = pos(token, -1, segment=segment, product=product, symbol=symbol)
        changes.append(change(old, new))
        after_rows.append(new)
    _, alerts = rule.evaluate(None, poll(snap(*after_rows), *changes))
    return [a.key.token for a in alerts if a.key is not None]


ROWS = (
    ("1", "nse_fo", "NRML", "BANKNIFTY25DECFUT"),
    ("2", "nse_fo", "MIS", "NIFTY25DECFUT"),
    ("3", "bse_fo", "NRML", "SENSEX25DECFUT"),
    ("4", "nse_cm", "CNC", "banknifty-etf"),
)


# Globs


def test_globs_are_case_insensitive_shell_patterns() -> None:
    """BANKNIFTY* matches any case; a pattern must match the whole value."""
    globs = Globs.of(["BANKNIFTY*"])
    assert [globs.match(v) for v in ("BANKNIFTY25DECFUT", "banknifty", "NIFTY25DEC")] == [
        True,
        True,
        False,
    ]
    exact = Globs.of(["NIFTY"])
    assert [exact.match(v) for v in ("NIFTY", "nifty", "BANKNIFTY", "NIFTY50")] == [
        True,
        True,
        False,
        False,
    ]


def test_globs_with_several_patterns_match_any() -> None:
    """Any one pattern matching is enough, and each stays anchored at both ends."""
    globs = Globs.of(["NIFTY*", "*FUT", "nse_?o"])
    assert [globs.match(v) for v in ("NIFTYCE", "SENSEXFUT", "NSE_FO", "XNIFTYCE", "nse_foo")] == [
        True,
        True,
        True,
        False,
        False,
    ]


def test_empty_globs_match_everything() -> None:
    """No patterns means no restriction, including the empty string."""
    assert Globs.of([]).match("anything")
    assert Globs().match("")
    assert not PositionFilter().filters_positions


# Position filters through the rules


def test_symbol_filter() -> None:
    """symbols [BANKNIFTY*] keeps only BANKNIFTY rows, in any case."""
    assert shorts(PositionFilter(symbols=Globs.of(["BANKNIFTY*"])), *ROWS) == ["1", "4"]


def test_segment_filter_case_insensitive() -> None:
    """segments [NSE_FO] matches the lower-case nse_fo rows only."""
    assert shorts(PositionFilter(segments=Globs.of(["NSE_FO"])), *ROWS) == ["1", "2"]


def test_product_filter() -> None:
    """products [mis] keeps only MIS rows."""
    assert shorts(PositionFilter(products=Globs.of(["mis"])), *ROWS) == ["2"]


def test_filters_combine_with_and() -> None:
    """A row must pass every configured filter."""
    flt = PositionFilter(segments=Globs.of(["nse_*"]), symbols=Globs.of(["*nifty*"]))
    assert flt.filters_positions
    assert shorts(flt, *ROWS) == ["1", "2", "4"]
    flt = PositionFilter(segments=Globs.of(["nse_*"]), products=Globs.of(["NRML", "CNC"]))
    assert shorts(flt, *ROWS) == ["1", "4"]


def test_no_filter_reports_every_row() -> None:
    """Without filters every row is reported."""
    assert shorts(PositionFilter(), *ROWS) == ["1", "2", "3", "4"]


def test_squared_off_filters_on_the_closed_row() -> None:
    """squared_off applies the filters to the position that was open (vanished rows too)."""
    rule = SquaredOff("c", Severity.INFO, PositionFilter(symbols=Globs.of(["BANKNIFTY*"])))
    bank, nifty = pos("1", 25, symbol="BANKNIFTY25DECFUT"), pos("2", 25, symbol="NIFTY25DECFUT")
    _, alerts = rule.evaluate(None, poll(snap(), change(bank, None), change(nifty, None)))
    assert [a.key for a in alerts] == [key("1")]


def test_account_drawdown_sums_only_filtered_positions() -> None:
    """With segments [nse_fo] the account MTM counts nse_fo rows only."""
    rule = MtmDrawdown(
        "dd",
        Severity.CRITICAL,
        PositionFilter(segments=Globs.of(["nse_fo"])),
        Scope.ACCOUNT,
        Lifecycle(),
        Decimal(1000),
    )
    first = snap(
        pos("1", 1, mtm=3000),
        pos("2", 1, mtm=2000),
        pos("3", 1, segment="bse_fo", mtm=-10000),
        pos("4", 1, segment="nse_cm", mtm=None),  # unknown, but filtered out
    )
    assert rule.account_figure(first) == Decimal(5000)
    state, alerts = rule.evaluate(None, poll(first))
    assert (state, alerts) == ({None: drawdown_entry(5000)}, [])
    # nse_fo falls by 1000 while bse_fo rises by more: only the filtered sum counts.
    second = snap(
        pos("1", 1, mtm=2500),
        pos("2", 1, mtm=1500),
        pos("3", 1, segment="bse_fo", mtm=50000),
        pos("4", 1, segment="nse_cm", mtm=None),
    )
    state, [alert] = rule.evaluate(state, poll(second))
    assert alert.details == {
        "mtm": Decimal(4000),
        "peak": Decimal(5000),
        "drawdown": Decimal(1000),
    }


def test_position_drawdown_tracks_only_filtered_positions() -> None:
    """Position scope keeps peaks only for rows that pass the filters."""
    rule = MtmDrawdown(
        "dd",
        Severity.WARNING,
        PositionFilter(products=Globs.of(["MIS"])),
        Scope.POSITION,
        Lifecycle(),
        Decimal(10),
    )
    rows = (pos("1", 1, product="MIS", mtm=50), pos("1", 1, product="NRML", mtm=50))
    state, _ = rule.evaluate(None, poll(snap(*rows)))
    assert state == {key("1", product="MIS"): drawdown_entry(50)}


def test_accounts_filter_applies_in_the_pipeline() -> None:
    """accounts [KOTAK-*] matches kotak-main (case-insensitive) and excludes other accounts."""
    rule = NewShort("s", Severity.WARNING, PositionFilter(accounts=Globs.of(["KOTAK-*"])))
    for account, expected in (("kotak-main", 1), ("samco-1", 0)):
        before = snap(pos("1", 0, account=account), account=account)
        after = snap(pos("1", -1, account=account), account=account)
        evaluation = evaluate_poll(before, before.taken_at.date(), after, [rule], {}, IST)
        assert len(evaluation.alerts) == expected, account


# Building rules by kind


def test_registry_knows_every_kind() -> None:
    """Exactly the condition kinds and the event kinds are registered."""
    assert sorted(RULE_KINDS) == [
        "mtm_above", "mtm_below", "mtm_drawdown", "new_position", "new_short", "position_limit",
        "quantity_change", "squared_off",
    ]  # fmt: skip


def test_build_each_kind() -> None:
    """The builders return the configured rule values."""
    flt = PositionFilter(symbols=Globs.of(["BANKNIFTY*"]))
    assert RULE_KINDS["new_short"]("s", Severity.INFO, flt, {}) == NewShort("s", Severity.INFO, flt)
    assert RULE_KINDS["squared_off"]("c", Severity.WARNING, flt, {}) == SquaredOff(
        "c", Severity.WARNING, flt
    )
    assert RULE_KINDS["mtm_drawdown"](
        "dd", Severity.CRITICAL, flt, {"threshold": 5000, "scope": "position"}
    ) == MtmDrawdown("dd", Severity.CRITICAL, flt, Scope.POSITION, Lifecycle(), Decimal(5000))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(5000, Decimal(5000)), ("2500.50", Decimal("2500.50")), (0.1, Decimal("0.1"))],
)
def test_drawdown_threshold_forms(raw: object, expected: Decimal) -> None:
    """Ints, decimal strings and floats become exact Decimals; scope defaults to account."""
    rule = RULE_KINDS["mtm_drawdown"]("dd", Severity.WARNING, PositionFilter(), {"threshold": raw})
    assert isinstance(rule, MtmDrawdown)
    assert (rule.threshold, rule.scope) == (expected, Scope.ACCOUNT)
    assert str(rule.threshold) == str(expected)


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({}, "threshold", "threshold: required for kind mtm_drawdown"),
        ({"threshold": -5}, "threshold", "threshold: must be a positive amount; got -5"),
        ({"threshold": 0}, "threshold", "threshold: must be a positive amount; got 0"),
        ({"threshold": "0.00"}, "threshold", "threshold: must be a positive amount; got 0.00"),
        ({"threshold": "abc"}, "threshold", "threshold: must be a number; got 'abc'"),
        ({"threshold": True}, "threshold", "threshold: must be a number; got True"),
        ({"threshold": None}, "threshold", "threshold: must be a number; got None"),
        ({"threshold": [5]}, "threshold", "threshold: must be a number; got [5]"),
        ({"threshold": "inf"}, "threshold", "threshold: must be a positive amount; got inf"),
        ({"threshold": "NaN"}, "threshold", "threshold: must be a positive amount; got NaN"),
        (
            {"threshold": 5, "window": 3},
            "window",
            "window: unknown field for kind mtm_drawdown",
        ),
        (
            {"threshold": 5, "scope": "book"},
            "scope",
            "scope: must be one of account, position; got 'book'",
        ),
    ],
)
def test_drawdown_config_errors(options: dict[str, object], field: str, message: str) -> None:
    """Bad drawdown options raise RuleConfigError naming the field."""
    with pytest.raises(RuleConfigError) as info:
        RULE_KINDS["mtm_drawdown"]("dd", Severity.WARNING, PositionFilter(), options)
    assert info.value.field == field
    assert str(info.value) == message


@pytest.mark.parametrize("kind", ["new_short", "squared_off"])
def test_stateless_kinds_reject_options(kind: str) -> None:
    """new_short and squared_off take no options: any extra field is an error."""
    with pytest.raises(RuleConfigError) as info:
        RULE_KINDS[kind]("x", Severity.WARNING, PositionFilter(), {"threshold": 5})
    assert info.value.field == "threshold"
    assert str(info.value) == f"threshold: unknown field for kind {kind}"
