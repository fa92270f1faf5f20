"""A rule test file read and checked into a TestFile, every problem as ``FILE:LINE``.

The file's own fields and each test's are read here; a test's polls are ``polls``'s. The rules
file it names is read by ``config.load``, whose problems name the rules file's own lines.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from monitor import config
from monitor.brokers import FORMATS
from monitor.config.yaml_lines import LineList, LineLoader, LineMap, read_text
from monitor.durations import parse_duration
from monitor.rule_tests.cases import GENERIC, Expected, RuleTest, TestFile
from monitor.rule_tests.polls import read_polls
from monitor.rule_tests.problems import Problems

DEFAULT_ACCOUNT = "test"
INTERVAL_BOUNDS = (timedelta(milliseconds=1), timedelta(days=7))

_TOP_LEVEL = ("rules", "tests")
_TEST_FIELDS = ("name", "account", "broker", "timezone", "interval", "polls", "expect")


def load(path: Path) -> TestFile:
    """Read and check a test file and load the rules it names; ConfigError lists every problem
    (the rules file's own problems are its own lines)."""
    document = _document(path)
    problems = Problems(path)
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
    text = read_text(path)
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


def _test(problems: Problems, entry: LineMap, index: str, loaded: config.Config) -> RuleTest | None:
    """One test entry, or None when it has a problem (each one is recorded)."""
    before = len(problems.found)
    name = entry.get("name")
    owner = f"test {name!r}" if isinstance(name, str) and name else index
    if not isinstance(name, str) or not name.strip():
        problems.add(entry.line_of("name"), f"{owner}: name", "required: a non-empty string")
    problems.unknown_fields(entry, owner, _TEST_FIELDS)
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
            interval = parse_duration(
                entry["interval"], minimum=INTERVAL_BOUNDS[0], maximum=INTERVAL_BOUNDS[1]
            )
        except ValueError as err:
            problems.add(entry.line_of("interval"), f"{owner}: interval", str(err))
    polls = read_polls(problems, entry, owner, str(broker), str(account), interval)
    expect = _expect(problems, entry, owner)
    if len(problems.found) > before:
        return None
    return RuleTest(str(name), entry.line, str(account), zone, polls, expect)


def _expect(problems: Problems, entry: LineMap, owner: str) -> tuple[Expected, ...]:
    """The alerts a test expects, in order; each must be a mapping of alert fields."""
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
