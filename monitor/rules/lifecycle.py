"""The lifecycle of one condition (per rule, account and subject): pending, firing, resolved.

Modelled on Prometheus alerting rules: a few instants kept as plain data, and each good poll a
short switch over them with the poll's ``taken_at`` passed in. ``for`` and ``keep_firing_for``
are comparisons against those instants, not timers, so a restart that reloads the state
continues a pending ``for`` and a repeat's timing. README "Condition rules" has the options.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

from monitor.durations import parse_duration
from monitor.rules.base import RuleConfigError

# A trading day resets every condition, so nothing longer than a day can ever elapse.
LONGEST = timedelta(days=1)
# Reminders more often than this would bury the alerts that matter under repeats.
SHORTEST_REPEAT = timedelta(minutes=1)

FOR = "for"
KEEP_FIRING_FOR = "keep_firing_for"
REPEAT_INTERVAL = "repeat_interval"
SEND_RESOLVED = "send_resolved"
LIFECYCLE_OPTIONS = frozenset({FOR, KEEP_FIRING_FOR, REPEAT_INTERVAL, SEND_RESOLVED})


class Outcome(enum.Enum):
    """What one good poll says of a subject."""

    ACTIVE = "active"  # the condition holds
    CLEAR = "clear"  # it does not
    NEITHER = "neither"  # in between (a drawdown from half the threshold to the threshold)
    UNKNOWN = "unknown"  # not evaluated (its MTM is unknown): the state stays as it is


class Transition(enum.Enum):
    """What a poll did to a condition that the trader hears about (NONE: nothing)."""

    NONE = "none"
    FIRED = "fired"
    REPEATED = "repeated"
    RESOLVED = "resolved"  # an alert only with send_resolved


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """A condition rule's lifecycle options; the defaults fire at once and resolve at once,
    never repeat, and send nothing on resolving."""

    hold_for: timedelta = timedelta(0)  # the rule's ``for``
    keep_firing_for: timedelta = timedelta(0)
    repeat_interval: timedelta | None = None
    send_resolved: bool = False


class Condition(msgspec.Struct, frozen=True, gc=False):
    """One condition's state: all None is inactive.

    ``pending_since`` is set while it waits out ``for``; ``firing_since`` while it fires, with
    ``last_sent`` the poll of the last firing alert and ``clear_since`` the first clear poll of a
    ``keep_firing_for`` count. A Struct: position-scope rules compare one per row every poll.
    """

    pending_since: datetime | None = None
    firing_since: datetime | None = None
    last_sent: datetime | None = None
    clear_since: datetime | None = None


INACTIVE = Condition()


def step(
    condition: Condition, outcome: Outcome, taken_at: datetime, lifecycle: Lifecycle
) -> tuple[Condition, Transition]:
    """The condition after a good poll at ``taken_at`` found ``outcome``, and what it did."""
    if outcome is Outcome.UNKNOWN:
        return condition, Transition.NONE
    firing_since = condition.firing_since
    if firing_since is None:
        if outcome is not Outcome.ACTIVE:
            return INACTIVE, Transition.NONE  # also cancels a pending ``for``
        pending_since = condition.pending_since or taken_at
        if taken_at - pending_since >= lifecycle.hold_for:
            return Condition(firing_since=taken_at, last_sent=taken_at), Transition.FIRED
        if condition.pending_since is None:
            return Condition(pending_since=taken_at), Transition.NONE
        return condition, Transition.NONE
    if outcome is Outcome.CLEAR:
        clear_since = condition.clear_since or taken_at
        if taken_at - clear_since >= lifecycle.keep_firing_for:
            return INACTIVE, Transition.RESOLVED
        if condition.clear_since is None:
            return Condition(None, firing_since, condition.last_sent, taken_at), Transition.NONE
        return condition, Transition.NONE
    # Active, or neither: still firing, and any keep_firing_for count starts over.
    last_sent = condition.last_sent or firing_since
    repeat = lifecycle.repeat_interval
    if repeat is not None and taken_at - last_sent >= repeat:
        return Condition(None, firing_since, taken_at, None), Transition.REPEATED
    if condition.clear_since is not None:
        return Condition(None, firing_since, last_sent, None), Transition.NONE
    return condition, Transition.NONE


def at_rest(condition: Condition, lifecycle: Lifecycle) -> bool:
    """Whether later polls finding the outcome that left ``condition`` as it is leave it so and
    say nothing, whatever their time: inactive, or firing with no ``keep_firing_for`` count and
    no ``repeat_interval``. A pending ``for``, a count and a repeat move with time."""
    if condition.pending_since is not None or condition.clear_since is not None:
        return False
    return condition.firing_since is None or lifecycle.repeat_interval is None


def read_lifecycle(options: Mapping[str, object]) -> Lifecycle:
    """The four lifecycle options from a rule's fields, each validated; RuleConfigError names
    the field that is wrong."""
    repeat = options.get(REPEAT_INTERVAL)
    send_resolved = options.get(SEND_RESOLVED, False)
    if not isinstance(send_resolved, bool):
        raise RuleConfigError(SEND_RESOLVED, f"must be true or false; got {send_resolved!r}")
    return Lifecycle(
        hold_for=_duration(options, FOR, timedelta(0)),
        keep_firing_for=_duration(options, KEEP_FIRING_FOR, timedelta(0)),
        repeat_interval=None if repeat is None else _duration(options, REPEAT_INTERVAL),
        send_resolved=send_resolved,
    )


def _duration(
    options: Mapping[str, object], field: str, default: timedelta | None = None
) -> timedelta:
    raw = options.get(field)
    if raw is None and default is not None:
        return default
    minimum = SHORTEST_REPEAT if field == REPEAT_INTERVAL else timedelta(0)
    try:
        if not isinstance(raw, str):
            raise ValueError(f"must be a duration like 5s, 500ms or 1m; got {raw!r}")
        return parse_duration(raw, minimum=minimum, maximum=LONGEST)
    except ValueError as err:
        raise RuleConfigError(field, str(err)) from None
