"""Typed extra account fields a broker needs (``position_type``, ``oms_id``...)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

_REQUIRED = object()


@dataclass(frozen=True, slots=True)
class Option:
    """One account field: how to read it (raising ValueError with a reason) and its default."""

    read: Callable[[object], object]
    default: object = _REQUIRED

    @property
    def required(self) -> bool:
        """True when the account must set it."""
        return self.default is _REQUIRED


def choice(*values: str, default: object = _REQUIRED) -> Option:
    """One of ``values``, case-insensitive, read in upper case."""

    def read(raw: object) -> str:
        if not isinstance(raw, str) or raw.upper() not in values:
            raise ValueError(f"must be one of {', '.join(values)}; got {raw!r}")
        return raw.upper()

    return Option(read, default)


def integer(default: object = _REQUIRED) -> Option:
    """A whole number."""

    def read(raw: object) -> int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ValueError(f"must be a whole number; got {raw!r}")
        return raw

    return Option(read, default)


def non_empty_string(default: object = _REQUIRED) -> Option:
    """A non-empty string."""

    def read(raw: object) -> str:
        if not isinstance(raw, str) or not raw.strip():
            raise ValueError(f"must be a non-empty string; got {raw!r}")
        return raw.strip()

    return Option(read, default)
