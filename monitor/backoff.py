"""Capped exponential backoff with jitter, shared by polling and delivery."""

from __future__ import annotations

import random


class Backoff:
    """Capped exponential delays with equal jitter: half fixed, half random."""

    def __init__(self, initial: float = 1.0, cap: float = 60.0) -> None:
        self.initial = initial
        self.cap = cap

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive failures (1 or more)."""
        ceiling = min(self.cap, self.initial * 2.0 ** (failures - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - retry jitter, not a secret  # nosec B311
