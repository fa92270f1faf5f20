"""The console sink prints each alert's state: the JSON contract's field and the text's word."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.config import SinkConfig
from monitor.engine import Engine
from monitor.metrics import Metrics
from monitor.model import Severity
from monitor.notify.console.sink import ConsoleSink
from monitor.notify.outbox import Dispatcher
from monitor.rules.base import PositionFilter
from monitor.rules.conditions import Scope
from monitor.rules.lifecycle import Lifecycle
from monitor.rules.mtm_below import MtmBelow
from monitor.store import Store
from monitor.store_thread import StoreThread
from tests.snapshots import IST, T0, pos, snap

LOSS_LIMIT = MtmBelow(
    "loss-limit", Severity.CRITICAL, PositionFilter(), Scope.ACCOUNT,
    Lifecycle(send_resolved=True), Decimal(-1000),
)  # fmt: skip


async def printed(tmp_path: Path, output_format: str) -> list[str]:
    """What the console prints for a loss limit that fires at T0 and resolves a minute later,
    delivered from the state file's outbox as the daemon delivers it."""
    store = Store(tmp_path / "state.db")
    try:
        engine = Engine(store, [LOSS_LIMIT], [SinkConfig("console", "console")])
        engine.ingest(snap(pos("1", 1, mtm=-2000), at=T0), IST)
        engine.ingest(snap(pos("1", 1, mtm=0), at=T0 + timedelta(minutes=1)), IST)
        stream = io.StringIO()
        sink = ConsoleSink("console", output_format, stream)
        await Dispatcher(StoreThread(store), [sink], Metrics(CollectorRegistry())).flush()
        return stream.getvalue().splitlines()
    finally:
        store.close()


async def test_json_lines_carry_the_state_of_each_alert(tmp_path: Path) -> None:
    """The firing alert says firing and the resolved one resolved, in the contract's place."""
    firing, resolved = (json.loads(line) for line in await printed(tmp_path, "json"))
    assert (firing["state"], resolved["state"]) == ("firing", "resolved")
    assert list(resolved)[:4] == ["rule", "kind", "severity", "state"]
    assert resolved["details"]["since"] == T0.isoformat()


@pytest.mark.parametrize(("line", "word"), [(0, "CRITICAL"), (1, "RESOLVED")])
async def test_text_lines_say_resolved_instead_of_the_severity(
    tmp_path: Path, line: int, word: str
) -> None:
    """The text line's second word is the severity while firing, RESOLVED once resolved."""
    assert (await printed(tmp_path, "text"))[line].split()[1] == word
