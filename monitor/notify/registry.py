"""Every sink kind rules.yaml may name: the one place a ``kind:`` string becomes a sink.

Adding a kind is its package (``monitor/notify/<kind>/``, exporting its ``SinkKind``) and one
line here.
"""

from __future__ import annotations

from collections.abc import Mapping

from monitor.notify.alertmanager import ALERTMANAGER
from monitor.notify.console import CONSOLE
from monitor.notify.kind import SinkKind
from monitor.notify.telegram import TELEGRAM
from monitor.notify.webhook import WEBHOOK

SINK_KINDS: Mapping[str, SinkKind] = {
    kind.name: kind
    for kind in (
        CONSOLE,
        TELEGRAM,
        WEBHOOK,
        ALERTMANAGER,
    )
}
