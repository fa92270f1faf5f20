"""What the event kinds share: one alert per change that is an event of the kind, no state.

An event kind (``new_short``, ``squared_off``) is a subclass that names its ``kind`` and says
in ``alert_for`` whether one change is its event. A kind with options of its own
(``quantity_change``) lists them in ``option_fields`` and reads them in ``read_options``.
Nothing fires on the silent baseline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from monitor.model import Alert, Change, Severity
from monitor.rules.base import Poll, PositionFilter, RuleConfigError
from monitor.rules.lifecycle import LIFECYCLE_OPTIONS


@dataclass(frozen=True, slots=True)
class EventRule:
    """The fields every rule has, and the evaluation of a kind that remembers nothing."""

    kind: ClassVar[str]  # the rule kind string used in rules.yaml and alerts
    option_fields: ClassVar[tuple[str, ...]] = ()  # the kind's own rules.yaml fields

    name: str
    severity: Severity
    filter: PositionFilter

    @classmethod
    def build(
        cls, name: str, severity: Severity, filter: PositionFilter, options: Mapping[str, object]
    ) -> Self:
        """Make the rule from its rules.yaml entry: the common fields and the kind's own."""
        for field in options:
            if field in LIFECYCLE_OPTIONS:
                reason = f"only condition kinds take it; {cls.kind} is an event kind"
                raise RuleConfigError(field, reason)
            if field not in cls.option_fields:
                raise RuleConfigError(field, f"unknown field for kind {cls.kind}")
        return cls(name, severity, filter, **cls.read_options(options))

    @classmethod
    def read_options(cls, options: Mapping[str, object]) -> dict[str, Any]:
        """The kind's own fields as dataclass fields; RuleConfigError names a bad one."""
        return {}

    def evaluate(self, state: None, poll: Poll) -> tuple[None, list[Alert]]:
        """One alert for every change of this poll that is an event of the kind."""
        if poll.baseline:
            return None, []
        alerts = []
        for change in poll.changes:
            alert = self.alert_for(change, poll)
            if alert is not None:
                alerts.append(alert)
        return None, alerts

    def alert_for(self, change: Change, poll: Poll) -> Alert | None:
        """The alert when ``change`` is an event of the kind and passes the filters."""
        raise NotImplementedError

    def dump_state(self, state: None) -> None:
        """Nothing to store."""

    def load_state(self, account: str, data: object) -> None:
        """Nothing to restore."""

    def dump_entries(self, before: None, after: None) -> None:
        """Not kept entry by entry."""

    def resting(self, state: None) -> bool:
        """Always: an event kind alerts only on changes."""
        return True
