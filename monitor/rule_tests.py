"""``position-monitor test``: unit tests of rules, the way ``promtool test rules`` tests
Prometheus alerting rules (README "Testing your rules").

A test file names a rules file and lists tests. Each test is a sequence of polls of one account
(``generic`` rows written in the test, or a broker's own response parsed by its real parser)
fed through the daemon's engine against an in-memory store, as ``replay`` does; the alerts it
produces must be exactly the expected ones, in order, each matching on the fields it gives.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Context, Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from monitor import config, replay
from monitor.brokers import FORMATS
from monitor.brokers._decode import MONEY, QUANTITY, unbounded_reason, within
from monitor.brokers.errors import BrokerError, BrokerUnavailable
from monitor.config.yaml_lines import (
    MAX_RULES_BYTES,
    LineList,
    LineLoader,
    LineMap,
    open_regular,
)
from monitor.durations import parse_duration
from monitor.engine import Engine
from monitor.model import Alert, Position, PositionKey, Snapshot
from monitor.printable import printable
from monitor.rules.base import Rule
from monitor.store import Store

GENERIC = "generic"  # polls written as rows in the test, not as a broker's response
DEFAULT_ACCOUNT = "test"
INTERVAL_BOUNDS = (timedelta(milliseconds=1), timedelta(days=7))

_TOP_LEVEL = ("rules", "tests")
_TEST_FIELDS = ("name", "account", "broker", "timezone", "interval", "polls", "expect")
_GENERIC_POLL_FIELDS = ("at", "positions", "error")
_BROKER_POLL_FIELDS = ("at", "status", "body", "quotes", "error")
_ROW_FIELDS = ("segment", "token", "product", "symbol", "net_qty", "mtm")


@dataclass(frozen=True, slots=True)
class TestPoll:
    """One poll of a test: generic rows, a broker's recorded response, or a failure."""

    line: int
    at: datetime
    positions: tuple[Position, ...] | None  # generic rows; None for a failure or a body
    record: replay.PollRecord | None  # a broker's response (or failure), as replay reads it
    error: str | None  # a failed generic poll

    def snapshot(self, account: str) -> Snapshot:
        """The good snapshot this poll yields, or the BrokerError the daemon would have seen."""
        if self.record is not None:
            return replay.outcome(self.record)
        if self.positions is None:
            raise BrokerUnavailable(GENERIC, f"transport error: {self.error}")
        return Snapshot(account, GENERIC, self.at, {p.key: p for p in self.positions})


@dataclass(frozen=True, slots=True)
class Expected:
    """One expected alert: the alert JSON fields it must have, with ``details`` as a subset."""

    line: int
    fields: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class RuleTest:
    """One test of a test file."""

    name: str
    line: int
    account: str
    timezone: ZoneInfo
    polls: tuple[TestPoll, ...]
    expect: tuple[Expected, ...]


@dataclass(frozen=True, slots=True)
class TestFile:
    """A checked test file and the rules it tests."""

    path: Path
    rules: tuple[Rule, ...]
    tests: tuple[RuleTest, ...]


@dataclass(frozen=True, slots=True)
class Result:
    """What one test produced, and how that differs from what it expects (empty: it passed)."""

    test: RuleTest
    produced: tuple[Alert, ...]
    differences: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.differences


# Reading


class _Problems:
    """Every problem of one test file, each as ``FILE:LINE: where: reason``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.found: list[tuple[int, str]] = []

    def add(self, line: int, where: str, reason: str) -> None:
        self.found.append((line, f"{self.path}:{line}: {where}: {reason}"))

    def error(self) -> config.ConfigError:
        """Every problem so far, in file order."""
        return config.ConfigError([text for _, text in sorted(self.found, key=lambda p: p[0])])

    def fatal(self, line: int, where: str, reason: str) -> config.ConfigError:
        """A problem that stops the reading, with the ones before it."""
        self.add(line, where, reason)
        return self.error()


def load(path: Path) -> TestFile:
    """Read and check a test file and load the rules it names; ConfigError lists every problem
    (the rules file's own problems are its own lines)."""
    document = _document(path)
    problems = _Problems(path)
    if not isinstance(document, LineMap):
        raise problems.fatal(1, "top level", "must be a mapping with rules and tests")
    for key in document:
        if key not in _TOP_LEVEL:
            reason = f"unknown field; expected {', '.join(_TOP_LEVEL)}"
            problems.add(document.line_of(key), str(key), reason)
    rules_name = document.get("rules")
    if not isinstance(rules_name, str) or not rules_name:
        reason = "required: the path of the rules file, relative to this file"
        raise problems.fatal(document.line_of("rules"), "rules", reason)
    rules_path = path.parent / rules_name
    if not rules_path.exists():
        raise problems.fatal(document.line_of("rules"), "rules", f"no such file: {rules_path}")
    loaded = config.load(rules_path)
    tests = document.get("tests")
    if not isinstance(tests, LineList) or not tests:
        raise problems.fatal(document.line_of("tests"), "tests", "required: a list of tests")
    read = []
    names: dict[str, int] = {}
    for index, entry in enumerate(tests):
        line = tests.item_lines[index]
        if not isinstance(entry, LineMap):
            problems.add(line, f"tests[{index}]", "must be a mapping with name, polls and expect")
            continue
        test = _test(problems, entry, f"tests[{index}]", loaded)
        if test is None:
            continue
        if test.name in names:
            reason = f"duplicate of the test on line {names[test.name]}"
            problems.add(entry.line_of("name"), f"test {test.name!r}: name", reason)
        names.setdefault(test.name, test.line)
        read.append(test)
    if problems.found:
        raise problems.error()
    return TestFile(path, loaded.rules, tuple(read))


def _document(path: Path) -> object:
    """The YAML document of ``path``, read within the rules file's size limit."""
    try:
        with open_regular(path) as file:
            data = file.read(MAX_RULES_BYTES + 1)
        if len(data) > MAX_RULES_BYTES:
            raise config.ConfigError([f"{path}: cannot read: larger than {MAX_RULES_BYTES} bytes"])
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise config.ConfigError([f"{path}: cannot read: {err}"]) from err
    try:
        return yaml.load(text, Loader=LineLoader)  # noqa: S506 - a SafeLoader subclass adding no tags  # nosec B506
    except RecursionError as err:
        raise config.ConfigError([f"{path}:1: invalid YAML: nested too deeply"]) from err
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        if mark is None:
            raise config.ConfigError([f"{path}:1: invalid YAML: {err}"]) from err
        where = f"{mark.line + 1}: invalid YAML: {err.problem} (column {mark.column + 1})"
        raise config.ConfigError([f"{path}:{where}"]) from err
    except yaml.YAMLError as err:
        raise config.ConfigError([f"{path}:1: invalid YAML: {err}"]) from err


def _test(
    problems: _Problems, entry: LineMap, index: str, loaded: config.Config
) -> RuleTest | None:
    """One test entry, or None when it has a problem (each one is recorded)."""
    before = len(problems.found)
    name = entry.get("name")
    owner = f"test {name!r}" if isinstance(name, str) and name else index
    if not isinstance(name, str) or not name.strip():
        problems.add(entry.line_of("name"), f"{owner}: name", "required: a non-empty string")
    for key in entry:
        if key not in _TEST_FIELDS:
            reason = f"unknown field; expected one of {', '.join(_TEST_FIELDS)}"
            problems.add(entry.line_of(key), f"{owner}: {key}", reason)
    account = entry.get("account", DEFAULT_ACCOUNT)
    if not isinstance(account, str) or not account.strip():
        problems.add(entry.line_of("account"), f"{owner}: account", "must be a non-empty string")
    broker = entry.get("broker", GENERIC)
    if not isinstance(broker, str) or (broker != GENERIC and broker not in FORMATS):
        known = ", ".join((GENERIC, *FORMATS))
        reason = f"unknown broker {broker!r}; expected one of {known}"
        problems.add(entry.line_of("broker"), f"{owner}: broker", reason)
        broker = GENERIC
    zone = loaded.timezone_for(str(broker))
    if "timezone" in entry:
        try:
            zone = ZoneInfo(str(entry["timezone"]))
        except (ValueError, OSError, ZoneInfoNotFoundError):
            reason = f"unknown IANA time zone {entry['timezone']!r}"
            problems.add(entry.line_of("timezone"), f"{owner}: timezone", reason)
    interval = None
    if "interval" in entry:
        try:
            raw = entry["interval"]
            if not isinstance(raw, str):
                raise ValueError(f"must be a duration like 5s, 500ms or 1m; got {raw!r}")
            interval = parse_duration(raw, minimum=INTERVAL_BOUNDS[0], maximum=INTERVAL_BOUNDS[1])
        except ValueError as err:
            problems.add(entry.line_of("interval"), f"{owner}: interval", str(err))
    polls = _polls(problems, entry, owner, str(broker), str(account), interval)
    expect = _expect(problems, entry, owner)
    if len(problems.found) > before:
        return None
    return RuleTest(str(name), entry.line, str(account), zone, polls, expect)


def _polls(
    problems: _Problems,
    entry: LineMap,
    owner: str,
    broker: str,
    account: str,
    interval: timedelta | None,
) -> tuple[TestPoll, ...]:
    raw = entry.get("polls")
    if not isinstance(raw, LineList) or not raw:
        problems.add(entry.line_of("polls"), f"{owner}: polls", "required: a list of polls")
        return ()
    polls: list[TestPoll] = []
    previous: datetime | None = None
    for index, poll in enumerate(raw):
        line, where = raw.item_lines[index], f"{owner}: polls[{index}]"
        if not isinstance(poll, LineMap):
            problems.add(line, where, "must be a mapping")
            continue
        at = _at(problems, poll, where, previous, interval)
        if at is None:
            return ()  # later polls count from this one
        previous = at
        if broker == GENERIC:
            polls.append(_generic_poll(problems, poll, where, account, at))
        else:
            polls.append(_broker_poll(problems, poll, where, account, broker, at))
    return tuple(polls)


def _at(
    problems: _Problems,
    poll: LineMap,
    where: str,
    previous: datetime | None,
    interval: timedelta | None,
) -> datetime | None:
    """The poll's instant: its ``at``, else ``interval`` after the poll before."""
    raw = poll.get("at")
    line = poll.line_of("at")
    if raw is None:
        if previous is None:
            problems.add(line, f"{where}: at", "required on the first poll")
        elif interval is None:
            problems.add(line, f"{where}: at", "required: the test sets no interval")
        else:
            return previous + interval
        return None
    at = raw
    if isinstance(raw, str):
        try:
            at = datetime.fromisoformat(raw)
        except ValueError:
            at = None
    if not isinstance(at, datetime) or at.tzinfo is None or not 1 < at.year < 9999:
        reason = f"must be an ISO 8601 time with a UTC offset, such as +05:30; got {str(raw)!r}"
        problems.add(line, f"{where}: at", reason)
        return None
    return at


def _generic_poll(
    problems: _Problems, poll: LineMap, where: str, account: str, at: datetime
) -> TestPoll:
    _unknown(problems, poll, where, _GENERIC_POLL_FIELDS)
    error = poll.get("error")
    rows = poll.get("positions")
    if ("error" in poll) == ("positions" in poll):
        reason = "needs positions (a good poll, maybe []) or error (a failed poll), not both"
        problems.add(poll.line, where, reason)
        return TestPoll(poll.line, at, None, None, "")
    if error is not None:
        if not isinstance(error, str) or not error:
            problems.add(poll.line_of("error"), f"{where}: error", "must be a reason: timeout")
        return TestPoll(poll.line, at, None, None, str(error))
    if not isinstance(rows, LineList):
        reason = "must be a list of rows (an empty list is an empty answer)"
        problems.add(poll.line_of("positions"), f"{where}: positions", reason)
        return TestPoll(poll.line, at, (), None, None)
    positions: dict[PositionKey, Position] = {}
    for index, row in enumerate(rows):
        line, row_where = rows.item_lines[index], f"{where}: positions[{index}]"
        if not isinstance(row, LineMap):
            problems.add(line, row_where, "must be a mapping with segment, token, net_qty")
            continue
        position = _row(problems, row, row_where, account)
        if position is None:
            continue
        if position.key in positions:
            problems.add(line, row_where, "a second row with this segment, token and product")
        positions[position.key] = position
    return TestPoll(poll.line, at, tuple(positions.values()), None, None)


def _row(problems: _Problems, row: LineMap, where: str, account: str) -> Position | None:
    before = len(problems.found)
    _unknown(problems, row, where, _ROW_FIELDS)
    text: dict[str, str] = {}
    for field, default in (("segment", None), ("token", None), ("product", ""), ("symbol", None)):
        value = row.get(field, default)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # an unquoted token such as 53179
        if value is None and field == "symbol":
            value = text.get("token", "")
        if not isinstance(value, str) or (default is None and not value):
            problems.add(row.line_of(field), f"{where}: {field}", "required: a non-empty string")
        text[field] = str(value)
    net_qty = _number(problems, row, "net_qty", where, QUANTITY, required=True)
    mtm = _number(problems, row, "mtm", where, MONEY, required=False)
    if len(problems.found) > before or net_qty is None:
        return None
    key = PositionKey(account, text["segment"], text["token"], text["product"])
    return Position(key, text["symbol"], net_qty, None, None, None, None, mtm)


def _number(
    problems: _Problems, entry: LineMap, field: str, where: str, bound: Context, *, required: bool
) -> Decimal | None:
    """A figure written as a number or a decimal string; None when absent or null."""
    raw = entry.get(field)
    if raw is None:
        if required:
            problems.add(entry.line_of(field), f"{where}: {field}", "required: a number")
        return None
    try:
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise InvalidOperation
        value = Decimal(str(raw))
    except InvalidOperation:
        problems.add(entry.line_of(field), f"{where}: {field}", f"must be a number; got {raw!r}")
        return None
    if not within(value, bound):
        problems.add(entry.line_of(field), f"{where}: {field}", unbounded_reason(value, bound))
        return None
    return value


def _broker_poll(
    problems: _Problems, poll: LineMap, where: str, account: str, broker: str, at: datetime
) -> TestPoll:
    _unknown(problems, poll, where, _BROKER_POLL_FIELDS)
    error = poll.get("error")
    if error is not None and (not isinstance(error, str) or not error):
        problems.add(poll.line_of("error"), f"{where}: error", "must be a reason: timeout")
    status = poll.get("status")
    if status is not None and (isinstance(status, bool) or not isinstance(status, int)):
        reason = f"must be an HTTP status number; got {status!r}"
        problems.add(poll.line_of("status"), f"{where}: status", reason)
    if "body" not in poll and error is None:
        reason = "needs body (the broker's response) or error (a failed poll)"
        problems.add(poll.line, where, reason)
    body = None
    if "body" in poll:
        raw = poll["body"]
        try:
            # A string is a raw body that is not JSON, as in a replay file.
            body = (
                raw.encode() if isinstance(raw, str) else json.dumps(raw, allow_nan=False).encode()
            )
        except (TypeError, ValueError) as err:
            reason = f"must be the response as JSON data (quote dates and times): {err}"
            problems.add(poll.line_of("body"), f"{where}: body", reason)
    quotes = _quotes(problems, poll, where)
    record = replay.PollRecord(
        poll.line, at, account, broker, status if isinstance(status, int) else None, body,
        error if isinstance(error, str) else None, quotes,
    )  # fmt: skip
    return TestPoll(poll.line, at, None, record, None)


def _quotes(problems: _Problems, poll: LineMap, where: str) -> dict[str, Decimal]:
    raw = poll.get("quotes")
    if raw is None:
        return {}
    if not isinstance(raw, LineMap):
        reason = "must map instrument (segment:token) to price"
        problems.add(poll.line_of("quotes"), f"{where}: quotes", reason)
        return {}
    quotes = {}
    for instrument in raw:
        price = _number(problems, raw, instrument, f"{where}: quotes", MONEY, required=True)
        if price is not None:
            quotes[str(instrument)] = price
    return quotes


def _expect(problems: _Problems, entry: LineMap, owner: str) -> tuple[Expected, ...]:
    raw = entry.get("expect")
    if not isinstance(raw, LineList):
        reason = "required: the alerts expected, in order ([] for none)"
        problems.add(entry.line_of("expect"), f"{owner}: expect", reason)
        return ()
    expected = []
    for index, alert in enumerate(raw):
        line = raw.item_lines[index]
        if not isinstance(alert, LineMap) or not all(isinstance(k, str) for k in alert):
            reason = "must be a mapping of alert fields: rule, symbol, at, details ..."
            problems.add(line, f"{owner}: expect[{index}]", reason)
            continue
        expected.append(Expected(line, dict(alert)))
    return tuple(expected)


def _unknown(problems: _Problems, entry: LineMap, where: str, known: tuple[str, ...]) -> None:
    for key in entry:
        if key not in known:
            reason = f"unknown field; expected one of {', '.join(known)}"
            problems.add(entry.line_of(key), f"{where}: {key}", reason)


# Running


def run(test_file: TestFile) -> list[Result]:
    """Run every test of ``test_file``, each on a fresh in-memory store."""
    return [_run(test, test_file.rules) for test in test_file.tests]


def _run(test: RuleTest, rules: Sequence[Rule]) -> Result:
    produced: list[Alert] = []
    store = Store(":memory:")
    try:
        engine = Engine(store, rules, sinks=())
        for poll in test.polls:
            try:
                snapshot = poll.snapshot(test.account)
            except BrokerError:
                continue  # a failed poll never reaches the rules
            produced += engine.ingest(snapshot, test.timezone).alerts
    finally:
        store.close()
    return Result(test, tuple(produced), tuple(differences(test.expect, produced)))


def differences(expected: Sequence[Expected], produced: Sequence[Alert]) -> list[str]:
    """How ``produced`` differs from ``expected``; empty when each expected alert matches the
    produced one in its place and there are no others.

    The two lists are aligned the way a diff aligns lines: an expected alert is paired with a
    produced one when that costs less than leaving both out (half the expected fields or more
    must match), matching pairs cost nothing, and a pair costs the share of its fields that
    differ. A pair that differs lists those fields.
    """
    produced_json = [alert.to_json() for alert in produced]
    lines = []
    for e, p in _alignment(expected, produced_json):
        if e is not None and p is not None:
            if wrong := mismatches(expected[e].fields, produced_json[p]):
                where = f"expected #{e + 1} (line {expected[e].line}) vs produced #{p + 1}"
                lines.append(f"{where}: {'; '.join(wrong)}")
        elif e is not None:
            lines.append(f"expected #{e + 1} (line {expected[e].line}): no alert produced for it")
        elif p is not None:
            rule = printable(produced[p].rule)
            lines.append(f"produced #{p + 1} ({rule}): not expected")
    return lines


_LEFT_OUT = Fraction(1, 2)  # the cost of an expected or a produced alert left unpaired


def _alignment(
    expected: Sequence[Expected], produced: Sequence[Mapping[str, object]]
) -> list[tuple[int | None, int | None]]:
    """The cheapest alignment, in order: (expected, produced) index pairs, None for no partner."""
    rows, cols = len(expected), len(produced)
    pair_cost = [
        [Fraction(len(mismatches(e.fields, p)), max(len(e.fields), 1)) for p in produced]
        for e in expected
    ]
    # cost[i][j]: the cheapest alignment of expected[i:] with produced[j:]
    cost = [[Fraction(0)] * (cols + 1) for _ in range(rows + 1)]
    for i in range(rows, -1, -1):
        for j in range(cols, -1, -1):
            if i == rows or j == cols:
                cost[i][j] = _LEFT_OUT * ((rows - i) + (cols - j))
            else:
                cost[i][j] = min(
                    pair_cost[i][j] + cost[i + 1][j + 1],
                    _LEFT_OUT + cost[i + 1][j],
                    _LEFT_OUT + cost[i][j + 1],
                )
    steps: list[tuple[int | None, int | None]] = []
    i = j = 0
    while i < rows or j < cols:
        if i < rows and j < cols and cost[i][j] == pair_cost[i][j] + cost[i + 1][j + 1]:
            steps.append((i, j))
            i, j = i + 1, j + 1
        elif i < rows and (j == cols or cost[i][j] == _LEFT_OUT + cost[i + 1][j]):
            steps.append((i, None))
            i += 1
        else:
            steps.append((None, j))
            j += 1
    return steps


def mismatches(expected: Mapping[str, object], produced: Mapping[str, object]) -> list[str]:
    """Each field of ``expected`` that ``produced`` (an alert's JSON) does not match.

    A mapping (``details``) matches as a subset; numbers match by value (25 and 25.0, a
    decimal string), times by instant (any offset).
    """
    found = []
    for field, want in expected.items():
        if field not in produced:
            found.append(f"{field}: the alert has no such field")
            continue
        got = produced[field]
        if isinstance(want, Mapping) and isinstance(got, Mapping):
            found += [f"{field}.{inner}" for inner in mismatches(want, got)]
        elif not _same(want, got):
            found.append(f"{field}: expected {_shown(want)}, got {_shown(got)}")
    return found


def _same(want: object, got: object) -> bool:
    if want is None or got is None or isinstance(want, bool) or isinstance(got, bool):
        return want is got or (type(want) is type(got) and want == got)
    if isinstance(want, Mapping):
        return isinstance(got, Mapping) and not mismatches(want, got)
    if isinstance(want, list):
        return (
            isinstance(got, list)
            and len(want) == len(got)
            and all(_same(w, g) for w, g in zip(want, got, strict=True))
        )
    if want == got:
        return True
    want_time, got_time = _instant(want), _instant(got)
    if want_time is not None and got_time is not None:
        return want_time == got_time
    want_number, got_number = _decimal(want), _decimal(got)
    return want_number is not None and got_number is not None and want_number == got_number


def _instant(value: object) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    return value if isinstance(value, datetime) and value.tzinfo is not None else None


def _decimal(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        number = Decimal(str(value))
        return number if number.is_finite() else None
    except InvalidOperation:
        return None


def _shown(value: object) -> str:
    return printable(json.dumps(value, default=_written, ensure_ascii=False))


def _written(value: object) -> str:
    """A YAML value that JSON lacks (an unquoted time, a date) as it reads in ISO form."""
    return value.isoformat() if isinstance(value, datetime | date) else str(value)


# Reporting


def report(path: Path, results: Sequence[Result], write: Callable[[str], None]) -> None:
    """One line per test; for a failure its expected and produced alerts and the differences."""
    for result in results:
        test = result.test
        if result.passed:
            write(f"ok   {printable(test.name)}")
            continue
        write(f"FAIL {printable(test.name)} ({path}:{test.line})")
        write(f"  expected ({len(test.expect)}):")
        for number, expected in enumerate(test.expect, 1):
            write(f"    #{number} (line {expected.line}) {_shown(dict(expected.fields))}")
        write(f"  produced ({len(result.produced)}):")
        for number, alert in enumerate(result.produced, 1):
            write(f"    #{number} {alert.to_jsonl()}")
        write("  differences:")
        for difference in result.differences:
            write(f"    {difference}")
