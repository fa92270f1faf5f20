"""Alert destinations as rules.yaml configures them: the routing every sink has, plus the
settings only its kind reads.

Each sink kind reads its own entry beside its sink (``monitor/notify/<kind>/``); the notify
section reader dispatches by kind through the registry (``monitor/notify/registry.py``).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

from monitor.config.problems import Problems
from monitor.config.yaml_lines import LineMap
from monitor.model import Alert, Severity
from monitor.rules.base import Globs


@dataclass(frozen=True, slots=True)
class SinkConfig:
    """One alert destination and the alerts routed to it.

    ``settings`` is the kind's own value (a frozen dataclass its reader made, None for the
    console); only that kind looks inside it. Each Telegram chat is a destination of its own
    (``telegram:desk``): its own outbox queue, so a chat that is down never delays another.
    """

    name: str
    kind: str
    min_severity: Severity = Severity.INFO
    format: str = "text"
    accounts: Globs = field(default_factory=Globs)
    rules: Globs = field(default_factory=Globs)
    settings: Hashable = None

    def accepts(self, alert: Alert) -> bool:
        """True when the alert's severity, account and rule are routed here."""
        return self.routes(alert.severity, alert.account, alert.rule)

    def routes(self, severity: Severity, account: str, rule: str) -> bool:
        """True when what a rule of this severity raises for this account is routed here."""
        return (
            severity.rank >= self.min_severity.rank
            and self.accounts.match(account)
            and self.rules.match(rule)
        )


@dataclass(frozen=True, slots=True)
class SinkEntry:
    """One notify entry handed to its kind's reader, its name already checked."""

    entry: LineMap
    name: str
    kind: str
    owner: str  # for problem lines: "notify 'NAME'"
    # Destination names taken so far (name -> line): sinks and chats share the outbox's names.
    taken: dict[str, int]

    def routed(
        self, problems: Problems, settings: Hashable = None, output_format: str = "text"
    ) -> SinkConfig:
        """The entry as one destination: its routing fields read, ``settings`` its kind's."""
        entry, owner = self.entry, self.owner
        return SinkConfig(
            self.name,
            self.kind,
            problems.severity(entry, owner, Severity.INFO, "min_severity"),
            output_format,
            problems.globs(entry, "accounts", owner),
            problems.globs(entry, "rules", owner),
            settings,
        )


ROUTING_FIELDS = ("kind", "name", "min_severity", "accounts", "rules")
"""The fields every single-destination entry has; its kind adds its own."""
