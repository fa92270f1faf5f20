"""One poll through the real pipeline against its floor, DeepDiff and other decoders.

The pipeline is what a good poll costs inside the monitor: the Kotak parser on the raw body
(decode, net quantity and MTM per row; as in the live client, rows unchanged since the first
poll are neither checked for duplicate keys nor decoded again) and ``evaluate_poll`` (diff
against the previous snapshot, then every rule of the bundled rules.yaml). The floor is msgspec
decoding the same body into typed Structs of the same fields, the least any parser must do.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import orjson
from deepdiff import DeepDiff

from benchmarks.data import BenchData, make_data
from benchmarks.timing import interleaved
from monitor import config
from monitor.brokers import kotak_neo
from monitor.pipeline import Evaluation, evaluate_poll
from monitor.rules.base import Rule

ROOT = Path(__file__).resolve().parent.parent
IST = ZoneInfo("Asia/Kolkata")
FIRST_AT = datetime(2026, 12, 1, 10, 0, tzinfo=IST)
ACCOUNT = "bench"


class FloorBody(msgspec.Struct, rename="camel"):
    """The positions envelope."""

    stat: str
    st_code: int
    data: list[kotak_neo.Row]  # the parser's own row type


FLOOR = msgspec.json.Decoder(FloorBody)


def bundled_rules() -> tuple[Rule, ...]:
    """Every rule of the repository's rules.yaml."""
    return config.load(ROOT / "rules.yaml").rules


@dataclass(frozen=True, slots=True)
class Poll:
    """A second poll of one account ready to run again and again from the same state."""

    data: BenchData
    rules: tuple[Rule, ...]
    baseline: Evaluation
    previous: Any  # the first poll's snapshot
    known: dict[bytes, Any]  # the first body's rows by their raw bytes, as the client keeps them

    @classmethod
    def after_first(cls, data: BenchData, rules: tuple[Rule, ...]) -> Poll:
        """The state after the first poll: its snapshot, trading day and rule states."""
        first = parse(data.first, data, FIRST_AT)
        _, known = kotak_neo.decode_rows(data.first, ACCOUNT, {})
        baseline = evaluate_poll(None, None, first, rules, {}, IST)
        return cls(data, rules, baseline, first, known)

    def run(self) -> Evaluation:
        """Parse the next body and evaluate it: the pipeline's work for one poll."""
        rows, _ = kotak_neo.decode_rows(self.data.second, ACCOUNT, self.known)
        current = kotak_neo.build(
            rows, account=ACCOUNT, taken_at=FIRST_AT + timedelta(seconds=5), quotes=self.data.quotes
        )
        known = self.baseline
        return evaluate_poll(
            self.previous, known.trading_day, current, self.rules, known.states, IST
        )


def parse(body: bytes, data: BenchData, at: datetime) -> Any:
    """The real Kotak parser with the poll's quotes."""
    return kotak_neo.parse(body, account=ACCOUNT, taken_at=at, quotes=data.quotes)


def floor(data: BenchData) -> FloorBody:
    """msgspec decoding the next body into typed Structs."""
    return FLOOR.decode(data.second)


def decoders(data: BenchData) -> dict[str, Callable[[], object]]:
    """Ways to decode a positions body: to plain objects, and to the typed rows a parser needs
    (``msgspec.convert`` turning the plain objects' decimal strings into Decimals)."""
    raw = data.second
    return {
        "json_loads": lambda: json.loads(raw),
        "orjson_loads": lambda: orjson.loads(raw),
        "json_typed": lambda: msgspec.convert(json.loads(raw), FloorBody),
        "orjson_typed": lambda: msgspec.convert(orjson.loads(raw), FloorBody),
        "msgspec_typed": lambda: FLOOR.decode(raw),
    }


ROUNDS = 60
DEEPDIFF_ROUNDS = 5
DECODER_ROUNDS = 40


def run() -> dict[str, float]:
    """Pipeline, floor, DeepDiff and decoder times at 1k and 10k positions, and their ratios."""
    rules = bundled_rules()
    small, large = make_data(1_000), make_data(10_000)
    small_poll, large_poll = Poll.after_first(small, rules), Poll.after_first(large, rules)
    # 1k and 10k in the same rounds, so that a slow spell of the machine weighs on both.
    times = interleaved(
        {
            "floor_1k": lambda: floor(small),
            "pipeline_1k": small_poll.run,
            "floor_10k": lambda: floor(large),
            "pipeline_10k": large_poll.run,
        },
        ROUNDS,
    )
    first, second = json.loads(small.first), json.loads(small.second)
    # Rows are a set keyed by (segment, token, product): their order means nothing, and our
    # diff matches them by key. DeepDiff answers that question with ignore_order=True; its
    # default pairs rows by index, so one row added at the top reports every row after it as
    # changed. The default's time is reported too.
    deep = interleaved(
        {
            "deepdiff_1k": lambda: DeepDiff(first, second, ignore_order=True),
            "deepdiff_by_index_1k": lambda: DeepDiff(first, second),
            "pipeline_1k": small_poll.run,
        },
        DEEPDIFF_ROUNDS,
    )
    decoding = interleaved(decoders(small), DECODER_ROUNDS)
    figures = {
        "pipeline_vs_floor_1k": times["pipeline_1k"] / times["floor_1k"],
        "pipeline_vs_floor_10k": times["pipeline_10k"] / times["floor_10k"],
        "deepdiff_vs_pipeline_1k": deep["deepdiff_1k"] / deep["pipeline_1k"],
        "scaling_10k_over_1k": times["pipeline_10k"] / times["pipeline_1k"],
    }
    raw = {f"{name}_ms": seconds * 1e3 for name, seconds in times.items()}
    raw["deepdiff_1k_ms"] = deep["deepdiff_1k"] * 1e3
    raw["deepdiff_by_index_1k_ms"] = deep["deepdiff_by_index_1k"] * 1e3
    raw.update({f"decode_{name}_1k_ms": seconds * 1e3 for name, seconds in decoding.items()})
    return figures | raw
