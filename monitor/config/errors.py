"""The one error of reading rules.yaml; its own module so that every reader can raise it."""

from __future__ import annotations

from collections.abc import Sequence


class ConfigError(Exception):
    """rules.yaml is not usable; ``problems`` holds one ready-to-print line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)
