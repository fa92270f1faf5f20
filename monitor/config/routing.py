"""Alert destinations as rules.yaml configures them, and what a sink kind supplies to read one.

Each sink kind reads its own entry beside its sink (``monitor/notify/``); the notify section
reader dispatches by kind through ``monitor/config/sinks.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from monitor.config.problems import Problems
from monitor.config.yaml_lines import LineMap
from monitor.model import Alert, Severity
from monitor.rules.base import Globs

if TYPE_CHECKING:  # the Telegram reader builds SinkConfigs, so it imports this module
    from monitor.notify.telegram.config import TelegramBotConfig


@dataclass(frozen=True, slots=True)
class SinkConfig:
    """One alert destination and the alerts routed to it.

    Each Telegram chat is a destination of its own (``telegram:desk``): its own outbox queue, so
    a chat that is down or blocked never delays another, and order is kept per chat.
    """

    name: str
    kind: str
    min_severity: Severity = Severity.INFO
    format: str = "text"
    accounts: Globs = field(default_factory=Globs)
    rules: Globs = field(default_factory=Globs)
    bot: TelegramBotConfig | None = None  # telegram only
    chat: str | None = None  # telegram only: a chat id, @channel, or "${ENV_VAR}"
    settings: Hashable = None  # the kind's own value, made by its reader; only it looks inside

    def accepts(self, alert: Alert) -> bool:
        """True when the alert's severity, account and rule are routed here."""
        return (
            alert.severity.rank >= self.min_severity.rank
            and self.accounts.match(alert.account)
            and self.rules.match(alert.rule)
        )


@dataclass(frozen=True, slots=True)
class SinkEntry:
    """One notify entry handed to its kind's reader, its name already checked."""

    entry: LineMap
    name: str
    owner: str  # for problem lines: "notify 'NAME'"
    # Destination names taken so far (name -> line): sinks and chats share the outbox's names.
    taken: dict[str, int]


@dataclass(frozen=True, slots=True)
class SinkKind:
    """How one kind of notify entry is read: its fields and the reader of its destinations."""

    fields: tuple[str, ...]
    read: Callable[[Problems, SinkEntry], list[SinkConfig]]
