"""``python -m benchmarks``: every figure of the benchmarks issue, then one JSON line.

Human-readable lines first; the last line of standard output is one JSON object with every
figure and the raw times of the references. Exit status 1 when a target is missed.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import math
import operator
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import detect, fanout, pipeline, scale

ROOT = Path(__file__).resolve().parent.parent
FANOUT_REPEAT = 5  # daemon and bare pairs; the figure is the median pair

# figure -> (comparison, bound); polls_per_cpu_second and scale_cpu_share are reported only.
TARGETS: dict[str, tuple[str, float]] = {
    "pipeline_vs_floor_1k": ("<=", 2.0),
    "pipeline_vs_floor_10k": ("<=", 2.0),
    "deepdiff_vs_pipeline_1k": (">=", 200.0),
    "scaling_10k_over_1k": ("<=", 12.0),
    "fanout_cpu_vs_bare": ("<=", 1.3),
    "detect_p99_over_floor": ("<=", 3.0),
    "rss_bytes_per_position": ("<=", 1500.0),
    # 5,000 accounts at 5 s on one core: the p99 from due time to start, at most 10% of 5 s.
    "scale_lag_p99_over_interval": ("<=", 0.1),
}
_COMPARE: dict[str, Callable[[float, float], bool]] = {"<=": operator.le, ">=": operator.ge}


def memory() -> dict[str, float]:
    """The memory figure, measured in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def main() -> int:
    """Run every benchmark, print the figures, return the exit status."""
    started = time.monotonic()
    results: dict[str, object] = {"measured_on": datetime.date.today().isoformat()}
    for name, measure in (
        ("pipeline", pipeline.run),
        ("detect", detect.run),
        ("memory", memory),
        ("fanout", lambda: asyncio.run(fanout.run(FANOUT_REPEAT, ROOT))),
        ("scale", lambda: asyncio.run(scale.run(ROOT))),
    ):
        section_started = time.monotonic()
        figures = measure()
        print(f"{name} ({time.monotonic() - section_started:.0f} s)", flush=True)
        for key, value in figures.items():
            target = TARGETS.get(key)
            verdict = ""
            if target is not None:
                ok = _COMPARE[target[0]](value, target[1])
                verdict = f"  target {target[0]} {target[1]:g}: {'met' if ok else 'MISSED'}"
            print(f"  {key:32} {value:12.3f}{verdict}", flush=True)
        results.update(figures)
    missed = [
        key
        for key, (comparison, bound) in TARGETS.items()
        if not _COMPARE[comparison](float(results[key]), bound)  # type: ignore[arg-type]
    ]
    results["missed"] = missed
    results["seconds"] = round(time.monotonic() - started, 1)
    print("missed: " + (", ".join(missed) if missed else "none"))
    # Strict JSON: a figure past every bound (a lag beyond the histogram's last bucket) is null.
    finite = {
        key: None if isinstance(value, float) and not math.isfinite(value) else value
        for key, value in results.items()
    }
    print(json.dumps(finite, allow_nan=False))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
