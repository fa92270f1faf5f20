"""The problem collector of a rule test file: every problem as ``FILE:LINE: where: reason``.

Reading goes on after a problem, so one run reports them all, in file order.
"""

from __future__ import annotations

from pathlib import Path

from monitor.config import ConfigError
from monitor.config.yaml_lines import LineMap


class Problems:
    """Every problem of one test file, each as ``FILE:LINE: where: reason``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.found: list[tuple[int, str]] = []

    def add(self, line: int, where: str, reason: str) -> None:
        """Record one problem."""
        self.found.append((line, f"{self.path}:{line}: {where}: {reason}"))

    def error(self) -> ConfigError:
        """Every problem so far, in file order."""
        return ConfigError([text for _, text in sorted(self.found, key=lambda p: p[0])])

    def fatal(self, line: int, where: str, reason: str) -> ConfigError:
        """A problem that stops the reading, with the ones before it."""
        self.add(line, where, reason)
        return self.error()

    def unknown_fields(self, entry: LineMap, where: str, known: tuple[str, ...]) -> None:
        """A problem for each key of ``entry`` not in ``known``."""
        for key in entry:
            if key not in known:
                reason = f"unknown field; expected one of {', '.join(known)}"
                self.add(entry.line_of(key), f"{where}: {key}", reason)
