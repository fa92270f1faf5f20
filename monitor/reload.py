"""What a configuration reload changes: the difference between two valid configs, as data.

Pure: ``plan(old, new)`` compares the two and says which rules, accounts and sinks were added,
changed or removed, and which settings only a restart applies. Applying the plan is the
daemon's job (README, "Reloading the configuration").

A rule is unchanged when its whole definition is (name, kind, severity, filters, options): only
then does it keep its state (peaks, pending and firing conditions). An account is unchanged when
its settings are, its window's calendar included; a changed one restarts its poller. A sink is
unchanged when its entry is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from monitor.config import AccountConfig, Config, simulator_account
from monitor.shard import WHOLE, Shard


@dataclass(frozen=True, slots=True)
class Changes:
    """Names added, changed (same name, another definition) and removed, in file order."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    @property
    def gone(self) -> tuple[str, ...]:
        """What no longer runs as it did: changed and removed names."""
        return (*self.changed, *self.removed)

    @property
    def new(self) -> tuple[str, ...]:
        """What starts afresh: added and changed names."""
        return (*self.added, *self.changed)


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """Everything a reload from one config to another changes."""

    rules: Changes
    accounts: Changes
    sinks: Changes
    needs_restart: tuple[str, ...]  # settings that apply only at the next start

    def summary(self) -> dict[str, Any]:
        """The changes as log fields (empty lists left out)."""
        fields: dict[str, Any] = {}
        for section in ("rules", "accounts", "sinks"):
            changes: Changes = getattr(self, section)
            for what in ("added", "changed", "removed"):
                if names := getattr(changes, what):
                    fields[f"{section}_{what}"] = list(names)
        return fields


def plan(old: Config, new: Config, shard: Shard = WHOLE) -> ReloadPlan:
    """What reloading from ``old`` to ``new`` changes for a daemon polling ``shard``."""
    # An account's window carries its calendar, so a changed calendar changes the account.
    old_accounts: dict[str, object] = {a.id: a for a in running_accounts(old, shard)}
    new_accounts = {a.id: a for a in running_accounts(new, shard)}
    needs_restart = [
        name
        for name, before, after in (
            ("daemon.state", old.state_path, new.state_path),
            ("daemon.listen", old.listen, new.listen),
        )
        if before != after
    ]
    return ReloadPlan(
        rules=_compare({r.name: r for r in old.rules}, [(r.name, r) for r in new.rules]),
        accounts=_compare(old_accounts, list(new_accounts.items())),
        sinks=_compare({s.name: s for s in old.sinks}, [(s.name, s) for s in new.sinks]),
        needs_restart=tuple(needs_restart),
    )


def running_accounts(config: Config, shard: Shard = WHOLE) -> tuple[AccountConfig, ...]:
    """The accounts a daemon of ``shard`` on ``config`` polls: the simulator when the file
    configures none (not when the shard has none; README, "Run with Kubernetes")."""
    return shard.select(config.accounts or (simulator_account(config),))


def daemon_zone(config: Config) -> ZoneInfo:
    """The zone of times that belong to no account: the file's, else its first account's (the
    file's, not a shard's: every replica names times alike)."""
    return config.timezone or running_accounts(config)[0].timezone


def _compare(old: dict[str, object], new: Sequence[tuple[str, object]]) -> Changes:
    names = {name for name, _ in new}
    return Changes(
        added=tuple(name for name, _ in new if name not in old),
        changed=tuple(name for name, value in new if name in old and old[name] != value),
        removed=tuple(name for name in old if name not in names),
    )
