"""The outcome of a test file's tests as text: one line per test, the detail of a failure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from monitor.printable import printable
from monitor.rule_tests.matching import shown
from monitor.rule_tests.running import Result


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
            write(f"    #{number} (line {expected.line}) {shown(dict(expected.fields))}")
        write(f"  produced ({len(result.produced)}):")
        for number, alert in enumerate(result.produced, 1):
            write(f"    #{number} {alert.to_jsonl()}")
        write("  differences:")
        for difference in result.differences:
            write(f"    {difference}")
