"""What a sink kind supplies, and what the daemon hands it to build its sinks.

A kind is one ``SinkKind`` value exported by its package (``monitor/notify/<kind>/``) and listed
once in ``monitor/notify/registry.py``. It reads its rules.yaml entry, resolves the entry's
``${ENV}`` references when the daemon starts, and builds its sinks from the resolved
destinations plus a ``SinkContext``. ``build`` is a required field: a kind without one cannot be
constructed, so it can never fall back to some other sink.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar
from zoneinfo import ZoneInfo

from monitor.config import secrets
from monitor.config.problems import Problems
from monitor.config.routing import SinkConfig, SinkEntry
from monitor.notify.base import Sink

if TYPE_CHECKING:  # the config package imports the kinds: keep this module's imports light
    from monitor.health import AccountStatus
    from monitor.model import Snapshot
    from monitor.rules.conditions import FiringCondition
    from monitor.store_thread import StoreThread

SettingsT = TypeVar("SettingsT")


class DaemonView(Protocol):
    """What a sink may read of the running daemon."""

    def statuses(self) -> Sequence[AccountStatus]: ...

    def snapshot(self, account: str) -> Snapshot | None: ...

    def rule_names(self) -> Sequence[str]: ...

    def firing_conditions(self) -> Sequence[FiringCondition]: ...


class Service(Protocol):
    """A loop a kind runs beside its sinks while the daemon runs (a bot's command listener)."""

    @property
    def name(self) -> str: ...

    async def run(self) -> None: ...


class Resource(Protocol):
    """Something several destinations of a kind share (a bot, an HTTP session)."""

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Destination:
    """A destination ready to build: its config and the values of its ``${ENV}`` references,
    by the rules.yaml field they were written in."""

    config: SinkConfig
    values: Mapping[str, str] = field(default_factory=dict)

    def settings(self, kind: type[SettingsT]) -> SettingsT:
        """The destination's settings, which its kind's reader made of type ``kind``."""
        return settings_of(self.config, kind)


@dataclass(slots=True)
class Resolution:
    """One kind's destinations with their environment values, or what is wrong with them."""

    destinations: list[Destination] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)  # values every output must redact
    skipped: list[str] = field(default_factory=list)  # optional entries whose variables are unset
    problems: list[str] = field(default_factory=list)  # "FILE: notify 'NAME': reason" lines


@dataclass(frozen=True, slots=True)
class SinkContext:
    """What the daemon provides to every kind's ``build``."""

    redact: Callable[[str], str]  # scrubs every secret the daemon knows from a text
    zones: Mapping[str, tzinfo]  # account id -> the zone its times are written in
    timezone: ZoneInfo  # for times that belong to no account
    view: DaemonView
    store: StoreThread  # the state file, awaited on its own thread
    clock: Callable[[], datetime]


@dataclass(slots=True)
class SinkSet:
    """What one kind built: a sink per destination, the loops to run beside them and the
    shared resources to close after them."""

    sinks: list[Sink] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    resources: list[Resource] = field(default_factory=list)


def no_references(
    path: Path, sinks: Sequence[SinkConfig], environ: Mapping[str, str]
) -> Resolution:
    """The resolution of a kind whose entries name no environment variable."""
    return Resolution([Destination(sink) for sink in sinks])


def references(
    *fields: str,
) -> Callable[[Path, Sequence[SinkConfig], Mapping[str, str]], Resolution]:
    """A resolver for settings whose ``fields`` (attributes named as in rules.yaml) may hold
    ``${ENV}`` references; every resolved value is a secret."""

    def resolve(path: Path, sinks: Sequence[SinkConfig], environ: Mapping[str, str]) -> Resolution:
        resolution = Resolution()
        for sink in sinks:
            values: dict[str, str] = {}
            for name in fields:
                reference = getattr(sink.settings, name)
                if reference is None:
                    continue
                missing: list[str] = []
                value = secrets.from_env(reference, environ, missing)
                where = f"{path}: notify '{sink.name}': {name}"
                resolution.problems += [
                    f"{where}: environment variable {v} is not set" for v in missing
                ]
                if secrets.has_control_character(value):
                    resolution.problems.append(
                        f"{where}: contains a control character (a line break?)"
                    )
                values[name] = value
                resolution.secrets.append(value)
            resolution.destinations.append(Destination(sink, values))
        return resolution

    return resolve


def never_optional(sink: SinkConfig) -> bool:
    """A kind whose entries are always required."""
    return False


@dataclass(frozen=True, slots=True)
class SinkKind:
    """One kind of notify entry: how it is read, resolved at start and built into sinks."""

    name: str  # the ``kind:`` value in rules.yaml
    fields: tuple[str, ...]  # every field its entry may have
    read: Callable[[Problems, SinkEntry], list[SinkConfig]]
    build: Callable[[Sequence[Destination], SinkContext], SinkSet]
    resolve: Callable[[Path, Sequence[SinkConfig], Mapping[str, str]], Resolution] = no_references
    # Whether an entry may be left out at start when its variables are unset (``check`` says so).
    optional: Callable[[SinkConfig], bool] = never_optional


def settings_of(sink: SinkConfig, kind: type[SettingsT]) -> SettingsT:
    """``sink.settings`` as the type its kind's reader made; anything else is a wiring bug."""
    settings: Hashable = sink.settings
    if not isinstance(settings, kind):
        raise TypeError(
            f"sink {sink.name!r}: settings {type(settings).__name__}, not {kind.__name__}"
        )
    return settings
