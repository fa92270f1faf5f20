"""Secret references: rules.yaml names environment variables, never the secrets themselves.

A secret is written ``"${VARIABLE}"`` and read from the environment when the daemon starts, so
the file can be shared and committed. A literal in its place is refused without being echoed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from monitor.config.problems import Problems

_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")


def is_reference(value: object) -> bool:
    """True for a ``${VARIABLE}`` reference."""
    return isinstance(value, str) and _REFERENCE.match(value) is not None


def variable(reference: str) -> str:
    """The variable a ``${VARIABLE}`` reference names."""
    return reference[2:-1]


def require_reference(
    problems: Problems,
    value: object,
    owner: str,
    field: str,
    line: int,
    *,
    example: str,
    required: bool = False,
) -> None:
    """A problem unless ``value`` is a reference; the value is never echoed: it may be the
    secret itself."""
    if not is_reference(value):
        wanted = "required:" if required else "must be"
        reason = f'{wanted} an environment reference such as "{example}"'
        problems.problem(owner, field, reason, line)


def from_env(value: str, environ: Mapping[str, str], missing: list[str]) -> str:
    """A literal, or the value of a ``${VAR}`` reference; an unset variable goes to missing."""
    if not is_reference(value):
        return value
    resolved = environ.get(variable(value), "").strip()
    if not resolved:
        missing.append(variable(value))
    return resolved


def has_control_character(value: str) -> bool:
    """True when a secret holds a control character, usually a line break pasted with it: it
    would go into an HTTP header or URL on every request."""
    return any(ord(char) < 32 or ord(char) == 127 for char in value)
