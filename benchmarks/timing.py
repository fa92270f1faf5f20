"""Timing helpers: medians of interleaved runs, so a busy moment of the machine hits every
contender alike and only ratios taken in the same run are compared."""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Mapping


def interleaved(contenders: Mapping[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median seconds of each callable over ``repeat`` rounds that run each one in turn.

    Each round starts one contender later, so that each follows every other equally often:
    what ran before (a 10k poll that left the caches cold, or the same body decoded a moment
    ago) weighs on all alike. The garbage collector stays on, as in the daemon, but runs
    before each sample so one sample's garbage is not collected in the next one's time. A
    result is dropped inside its own sample: freeing what a poll built is part of its cost.
    """
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    order = list(contenders.items())
    for round_ in range(repeat):
        shift = round_ % len(order)
        for name, call in order[shift:] + order[:shift]:
            gc.collect()
            start = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in samples.items()}


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile: the smallest value with ``share`` of the values at or below."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(share * len(ordered))) - 1]
