"""One good poll in, alerts committed: the code the daemon and ``replay`` share.

The engine keeps each account's last good snapshot and rule states in memory, loads them from
the store the first time an account is seen, and writes every poll through the store in one
transaction before returning the alerts for delivery.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from monitor.config import SinkConfig
from monitor.health import failing_key
from monitor.model import Alert, Snapshot
from monitor.pipeline import Evaluation, evaluate_poll
from monitor.rules.base import Rule
from monitor.rules.conditions import FiringCondition, firing_conditions, firing_counts
from monitor.store import EntryWrite, Store

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class _AccountState:
    snapshot: Snapshot | None
    trading_day: date | None
    rule_states: dict[str, Any]
    # Whether this process has written the account's entry-kept states once in full: until
    # then the store may hold entries of an older state, so the first write replaces them.
    entries_written: bool = False


class Engine:
    """Evaluates good polls against the last committed state and commits the result."""

    def __init__(self, store: Store, rules: Sequence[Rule], sinks: Sequence[SinkConfig]) -> None:
        self._store = store
        self._rules = tuple(rules)
        self._sinks = tuple(sinks)
        self._accounts: dict[str, _AccountState] = {}

    def replace_rules(self, rules: Sequence[Rule]) -> None:
        """Evaluate ``rules`` from the next poll on. A rule equal to a current one (same name,
        kind, severity, filters and options) keeps its state; every other rule's state, in
        memory and stored, is dropped, so it starts afresh. Raises StoreError and then changes
        nothing. Called between polls: ``ingest`` never yields between evaluating and
        committing a poll."""
        kept = {rule.name for rule in rules if rule in self._rules}
        dropped = [rule.name for rule in self._rules if rule.name not in kept]
        dropped += [rule.name for rule in rules if rule.name not in kept]
        self._store.drop_rule_states(sorted(set(dropped)))
        self._rules = tuple(rules)
        for account, known in self._accounts.items():
            states = {name: s for name, s in known.rule_states.items() if name in kept}
            self._accounts[account] = replace(known, rule_states=states)

    def forget(self, account: str) -> None:
        """Drop what memory holds of an account no longer polled; its stored state stays, for
        when it is polled again."""
        self._accounts.pop(account, None)

    def route_to(self, sinks: Sequence[SinkConfig]) -> None:
        """Route the alerts of the next polls to ``sinks``."""
        self._sinks = tuple(sinks)

    def last_snapshot(self, account: str) -> Snapshot | None:
        """The last committed good snapshot of ``account``."""
        return self._state(account).snapshot

    def firing_conditions(self) -> list[FiringCondition]:
        """The conditions firing now in the accounts this process has polled (a restart's
        stored ones show from each account's first poll), accounts in the order first seen."""
        return [
            condition
            for account, known in self._accounts.items()
            for condition in firing_conditions(
                self._rules, account, known.rule_states, known.snapshot
            )
        ]

    def rules_for(self, account: str) -> list[Rule]:
        """The rules that apply to ``account``."""
        return [rule for rule in self._rules if rule.filter.accounts.match(account)]

    def firing_counts(self, account: str) -> dict[str, int]:
        """How many subjects each condition rule has firing in ``account`` now (every
        condition rule named, 0 for none; all 0 before the account's first poll)."""
        known = self._accounts.get(account)
        return firing_counts(self._rules, {} if known is None else known.rule_states)

    def ingest(self, snapshot: Snapshot, timezone: ZoneInfo) -> Evaluation:
        """Evaluate one good poll and commit it; raises StoreError and then changes nothing."""
        known = self._state(snapshot.account)
        evaluation = evaluate_poll(
            known.snapshot, known.trading_day, snapshot, self._rules, known.rule_states, timezone
        )
        changed_states: dict[str, object] = {}
        changed_entries: dict[str, EntryWrite] = {}
        for rule in self._rules:
            if rule.name not in evaluation.states:
                continue
            state, before = evaluation.states[rule.name], known.rule_states.get(rule.name)
            written = known.entries_written
            entries = rule.dump_entries(before if written else None, state)
            if entries is None:  # a state kept whole
                if state != before:
                    changed_states[rule.name] = rule.dump_state(state)
                continue
            if entries or not written:
                changed_entries[rule.name] = EntryWrite(entries, replace=not written)
        routed = [(alert, self._routes(alert)) for alert in evaluation.alerts]
        evaluated = evaluation.snapshot
        # Rows whose carried flag this poll turned on or off: stored, so a restart in the
        # middle of a carry removes the row at the next poll that still lacks it.
        flipped = evaluated.carried ^ (known.snapshot.carried if known.snapshot else frozenset())
        # A poll that changed nothing is not written: the stored snapshot already says all of
        # it but its time, so idle accounts cost no write (and no WAL growth) every interval.
        unchanged = (
            known.snapshot is not None
            and known.snapshot.broker == snapshot.broker
            and evaluation.trading_day == known.trading_day
            and not (evaluation.changes or routed or changed_states or changed_entries or flipped)
        )
        if not unchanged:
            self._store.commit_poll(
                evaluated, evaluation.trading_day, evaluation.changes, changed_states, routed,
                changed_entries, flipped,
            )  # fmt: skip
        self._accounts[snapshot.account] = _AccountState(
            evaluated, evaluation.trading_day, evaluation.states, entries_written=True
        )
        if evaluation.left_ahead is not None:
            log.warning(
                "trading_day_ahead_of_clock", account=snapshot.account,
                reached=evaluation.left_ahead.isoformat(), day=evaluation.trading_day.isoformat(),
                taken_at=snapshot.taken_at.isoformat(), restarted=evaluation.new_day,
            )  # fmt: skip
        return evaluation

    def commit_health(self, alert: Alert, *, failing: bool) -> None:
        """Queue ``poll_failing`` or ``poll_recovered`` with the account's failing flag, in one
        transaction, so a restart neither repeats the one nor forgets the other."""
        flag = {failing_key(alert.account): "1" if failing else ""}
        self._store.commit_alerts([(alert, self._routes(alert))], flag)

    def poll_failing_raised(self, account: str) -> bool:
        """Whether the stored failing flag says ``poll_failing`` of ``account`` stands
        unanswered by ``poll_recovered``."""
        return bool(self._store.get_meta(failing_key(account)))

    def _routes(self, alert: Alert) -> list[str]:
        return [sink.name for sink in self._sinks if sink.accepts(alert)]

    def _state(self, account: str) -> _AccountState:
        state = self._accounts.get(account)
        if state is None:
            stored = self._store.load_account(account)
            if stored is None:
                state = _AccountState(None, None, {})
            else:
                states = {}
                for rule in self._rules:
                    if rule.name not in stored.rule_states:
                        continue
                    try:
                        states[rule.name] = rule.load_state(account, stored.rule_states[rule.name])
                    except (TypeError, ValueError, ArithmeticError) as err:
                        # A rule that changed kind since its state was stored starts afresh.
                        log.warning(
                            "rule_state_discarded", account=account, rule=rule.name,
                            reason=f"{type(err).__name__}: {err}"[:200],
                        )  # fmt: skip
                state = _AccountState(stored.snapshot, stored.trading_day, states)
            self._accounts[account] = state
        return state


@contextmanager
def memory_engine(rules: Sequence[Rule]) -> Iterator[Engine]:
    """An engine on a fresh in-memory store with no sinks, as ``replay`` and ``test`` run one."""
    store = Store(":memory:")
    try:
        yield Engine(store, rules, sinks=())
    finally:
        store.close()
