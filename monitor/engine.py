"""One good poll in, alerts committed: the code the daemon and ``replay`` share.

The engine keeps each account's last good snapshot and rule states in memory, loads them from
the store the first time an account is seen, and writes every poll through the store in one
transaction before returning the alerts for delivery: ``Engine`` in the caller's thread,
``LiveEngine`` (the daemon's) awaiting the store's own thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from monitor.config import SinkConfig
from monitor.health import failing_key
from monitor.model import Alert, Snapshot
from monitor.pipeline import Evaluation, evaluate_poll, next_trading_day
from monitor.rules.base import Rule
from monitor.rules.conditions import FiringCondition, firing_conditions, firing_counts
from monitor.store import EntryWrite, Store, StoredAccount
from monitor.store_thread import StoreThread

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class _AccountState:
    snapshot: Snapshot | None
    trading_day: date | None
    rule_states: dict[str, Any]
    # Whether this process has written the account's entry-kept states once in full: until
    # then the store may hold entries of an older state, so the first write replaces them.
    entries_written: bool = False
    # Whether every rule's state is at rest (``Rule.resting``): a poll that hands back the
    # very rows of the last then has nothing to evaluate. None until worked out.
    quiet: bool | None = None


@dataclass(frozen=True, slots=True)
class _Poll:
    """One evaluated poll: what it writes (None when it changed nothing) and the account
    state it leaves once written."""

    evaluation: Evaluation
    write: tuple[Any, ...] | None  # the arguments of ``commit_poll``
    after: _AccountState


class _EngineCore:
    """The accounts' states in memory and the evaluation of a poll against them; no I/O.

    ``Engine`` commits through a ``Store`` (``replay``, ``test``); ``LiveEngine`` awaits the
    daemon's ``StoreThread``. A poll's state is kept only once its commit succeeded, so a
    failed commit leaves the last committed snapshot as the baseline and the next poll
    derives the same alerts again.
    """

    def __init__(self, rules: Sequence[Rule], sinks: Sequence[SinkConfig]) -> None:
        self._rules = tuple(rules)
        self._sinks = tuple(sinks)
        self._accounts: dict[str, _AccountState] = {}
        # By account: the rule states last counted, and their firing counts.
        self._firing: dict[str, tuple[dict[str, Any], dict[str, int]]] = {}

    def _rules_dropped(self, rules: Sequence[Rule]) -> list[str]:
        """The rules whose state a swap to ``rules`` drops: every rule not equal (same name,
        kind, severity, filters and options) to a current one, old or new."""
        kept = {rule.name for rule in rules if rule in self._rules}
        dropped = [rule.name for rule in self._rules if rule.name not in kept]
        dropped += [rule.name for rule in rules if rule.name not in kept]
        return sorted(set(dropped))

    def _swap_rules(self, rules: Sequence[Rule], dropped: Sequence[str]) -> None:
        """Evaluate ``rules`` from the next poll on, the ``dropped`` rules' states gone from
        memory (the store has dropped them already)."""
        self._rules = tuple(rules)
        gone = set(dropped)
        for account, known in self._accounts.items():
            states = {name: s for name, s in known.rule_states.items() if name not in gone}
            self._accounts[account] = replace(known, rule_states=states, quiet=None)

    def forget(self, account: str) -> None:
        """Drop what memory holds of an account no longer polled; its stored state stays, for
        when it is polled again."""
        self._accounts.pop(account, None)
        self._firing.pop(account, None)

    def route_to(self, sinks: Sequence[SinkConfig]) -> None:
        """Route the alerts of the next polls to ``sinks``."""
        self._sinks = tuple(sinks)

    def last_snapshot(self, account: str) -> Snapshot | None:
        """The last committed good snapshot of ``account`` (None before its first poll)."""
        known = self._accounts.get(account)
        return None if known is None else known.snapshot

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
        condition rule named, 0 for none; all 0 before the account's first poll).

        Counted again only when the account's states moved: the same dict otherwise, so a
        caller can tell nothing changed by identity."""
        known = self._accounts.get(account)
        if known is None:
            return firing_counts(self._rules, {})
        cached = self._firing.get(account)
        if cached is not None and cached[0] is known.rule_states:
            return cached[1]
        counts = firing_counts(self._rules, known.rule_states)
        self._firing[account] = (known.rule_states, counts)
        return counts

    def _evaluate(self, known: _AccountState, snapshot: Snapshot, timezone: ZoneInfo) -> _Poll:
        last = known.snapshot
        if known.quiet and last is not None and last.positions is snapshot.positions:
            # The client handed back the very rows of the last poll (it read the same bytes)
            # and no rule holds anything time alone moves: on the same day nothing can happen.
            turn = next_trading_day(known.trading_day, last.taken_at, snapshot.taken_at, timezone)
            if turn.day == known.trading_day:  # a new day, or one left, starts another day
                evaluation = Evaluation(snapshot, [], [], known.rule_states, False, False, turn.day)
                return _Poll(evaluation, None, replace(known, snapshot=snapshot))
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
        if unchanged:
            # The states are equal to the last ones: keeping those very objects tells whoever
            # derives figures from them (the firing counts) that nothing moved.
            quiet = self._quiet(known.rule_states) if known.quiet is None else known.quiet
            return _Poll(evaluation, None, replace(known, snapshot=evaluated, quiet=quiet))
        write = (
            evaluated, evaluation.trading_day, evaluation.changes, changed_states, routed,
            changed_entries, flipped,
        )  # fmt: skip
        after = _AccountState(
            evaluated, evaluation.trading_day, evaluation.states, entries_written=True,
            quiet=self._quiet(evaluation.states),
        )  # fmt: skip
        return _Poll(evaluation, write, after)

    def _quiet(self, states: dict[str, Any]) -> bool:
        """Whether every rule that applies (those with a state entry) is at rest."""
        return all(rule.resting(states[rule.name]) for rule in self._rules if rule.name in states)

    def _committed(self, poll: _Poll) -> Evaluation:
        evaluation, snapshot = poll.evaluation, poll.evaluation.snapshot
        self._accounts[snapshot.account] = poll.after
        if evaluation.left_ahead is not None:
            log.warning(
                "trading_day_ahead_of_clock", account=snapshot.account,
                reached=evaluation.left_ahead.isoformat(), day=evaluation.trading_day.isoformat(),
                taken_at=snapshot.taken_at.isoformat(), restarted=evaluation.new_day,
            )  # fmt: skip
        return evaluation

    def _health_write(
        self, alert: Alert, failing: bool
    ) -> tuple[list[tuple[Alert, list[str]]], dict[str, str]]:
        flag = {failing_key(alert.account): "1" if failing else ""}
        return [(alert, self._routes(alert))], flag

    def _routes(self, alert: Alert) -> list[str]:
        return [sink.name for sink in self._sinks if sink.accepts(alert)]

    def _resume(self, account: str, stored: StoredAccount | None) -> _AccountState:
        """The state an account starts from: what the store holds of it, or nothing."""
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


class Engine(_EngineCore):
    """Evaluates good polls against the last committed state and commits the result, in the
    caller's thread: for ``replay``, ``test`` and code that holds a ``Store`` of its own."""

    def __init__(self, store: Store, rules: Sequence[Rule], sinks: Sequence[SinkConfig]) -> None:
        super().__init__(rules, sinks)
        self._store = store

    def last_snapshot(self, account: str) -> Snapshot | None:
        """The last committed good snapshot of ``account``."""
        return self._state(account).snapshot

    def replace_rules(self, rules: Sequence[Rule]) -> None:
        """Evaluate ``rules`` from the next poll on. A rule equal to a current one keeps its
        state; every other rule's state, in memory and stored, is dropped, so it starts afresh.
        Raises StoreError and then changes nothing."""
        dropped = self._rules_dropped(rules)
        self._store.drop_rule_states(dropped)
        self._swap_rules(rules, dropped)

    def ingest(self, snapshot: Snapshot, timezone: ZoneInfo) -> Evaluation:
        """Evaluate one good poll and commit it; raises StoreError and then changes nothing."""
        poll = self._evaluate(self._state(snapshot.account), snapshot, timezone)
        if poll.write is not None:
            self._store.commit_poll(*poll.write)
        return self._committed(poll)

    def commit_health(self, alert: Alert, *, failing: bool) -> None:
        """Queue ``poll_failing`` or ``poll_recovered`` with the account's failing flag, in one
        transaction, so a restart neither repeats the one nor forgets the other."""
        self._store.commit_alerts(*self._health_write(alert, failing))

    def poll_failing_raised(self, account: str) -> bool:
        """Whether the stored failing flag says ``poll_failing`` of ``account`` stands
        unanswered by ``poll_recovered``."""
        return bool(self._store.get_meta(failing_key(account)))

    def _state(self, account: str) -> _AccountState:
        known = self._accounts.get(account)
        return (
            known if known is not None else self._resume(account, self._store.load_account(account))
        )


class _RuleGate:
    """Polls pass side by side; a rule swap waits until none is in flight and holds new ones
    back until it is done.

    A poll awaits its commit between evaluating and keeping its state, so without this a swap
    could land in the middle: the poll would keep the old rules' states in memory, or write
    them after the swap dropped them. One plain lock would also do that, but it would make the
    polls of every account wait on one account's commit held up by a locked state file, which
    the store's thread exists to prevent: polls only count themselves in and out here.
    """

    def __init__(self) -> None:
        self._polls = 0
        self._idle = asyncio.Event()  # no poll in flight
        self._idle.set()
        self._open = asyncio.Event()  # no swap running or waiting
        self._open.set()
        self._swaps = asyncio.Lock()

    @asynccontextmanager
    async def poll(self) -> AsyncIterator[None]:
        """Hold back a swap while the block runs; wait for one running or waiting first."""
        while not self._open.is_set():
            await self._open.wait()
        self._polls += 1
        self._idle.clear()
        try:
            yield
        finally:  # counts only, no await: a cancelled poll never leaves a swap waiting
            self._polls -= 1
            if not self._polls:
                self._idle.set()

    @asynccontextmanager
    async def swap(self) -> AsyncIterator[None]:
        """Run the block with no poll in flight and none starting."""
        async with self._swaps:
            self._open.clear()
            try:
                await self._idle.wait()
                yield
            finally:
                self._open.set()


class LiveEngine(_EngineCore):
    """The daemon's engine: the same evaluation, committed on the store's own thread.

    The loop runs the evaluation and awaits the commit; polls of one account never overlap
    (``AccountPoller``), so an account's next poll starts from its last commit. A reload's
    ``replace_rules`` never lands between a poll's evaluation and its commit (``_RuleGate``).
    """

    def __init__(
        self, store: StoreThread, rules: Sequence[Rule], sinks: Sequence[SinkConfig]
    ) -> None:
        super().__init__(rules, sinks)
        self._store = store
        self._gate = _RuleGate()

    async def resume(self, account: str) -> Snapshot | None:
        """The last committed good snapshot of ``account``, read from the store the first
        time the account is seen; raises StoreError."""
        async with self._gate.poll():  # its states are loaded for the rules of now
            return (await self._resume_live(account)).snapshot

    async def ingest(self, snapshot: Snapshot, timezone: ZoneInfo) -> Evaluation:
        """Evaluate one good poll and commit it; raises StoreError and then changes nothing.

        Cancelled while its commit waits its turn, nothing is written; cancelled while the
        commit runs, the commit lands and the state in memory stays behind it (a shutdown).
        """
        async with self._gate.poll():
            known = await self._resume_live(snapshot.account)
            poll = self._evaluate(known, snapshot, timezone)
            if poll.write is not None:
                await self._store.commit_poll(*poll.write)
            return self._committed(poll)

    async def replace_rules(self, rules: Sequence[Rule]) -> None:
        """Evaluate ``rules`` from the next poll on. A rule equal to a current one keeps its
        state; every other rule's state, in memory and stored, is dropped, so it starts afresh.
        Waits for the polls in flight to commit; raises StoreError and then changes nothing."""
        async with self._gate.swap():
            dropped = self._rules_dropped(rules)
            await self._store.drop_rule_states(dropped)
            self._swap_rules(rules, dropped)

    async def _resume_live(self, account: str) -> _AccountState:
        known = self._accounts.get(account)
        if known is None:
            known = self._resume(account, await self._store.load_account(account))
        return known

    async def commit_health(self, alert: Alert, *, failing: bool) -> None:
        """Queue ``poll_failing`` or ``poll_recovered`` with the account's failing flag, in one
        transaction, so a restart neither repeats the one nor forgets the other."""
        await self._store.commit_alerts(*self._health_write(alert, failing))

    def poll_failing_raised(self, account: str) -> bool:
        """Whether the stored failing flag says ``poll_failing`` of ``account`` stands
        unanswered by ``poll_recovered``; read at startup, before the loop serves anything."""
        return bool(self._store.wait(self._store.store.get_meta, failing_key(account)))

    async def poll_failing_stored(self, account: str) -> bool:
        """``poll_failing_raised`` awaited, for an account a reload adds while the loop
        serves."""
        return bool(await self._store.get_meta(failing_key(account)))


@contextmanager
def memory_engine(rules: Sequence[Rule]) -> Iterator[Engine]:
    """An engine on a fresh in-memory store with no sinks, as ``replay`` and ``test`` run one."""
    store = Store(":memory:")
    try:
        yield Engine(store, rules, sinks=())
    finally:
        store.close()
