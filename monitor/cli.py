"""Command line: ``position-monitor run | snapshot | check | notify test | replay | test |
shards``.

Exit status: 0 success; 2 bad input (rules.yaml, replay file, rule test file, arguments), with
one line per problem on standard error; 1 a runtime failure such as an unusable state file or
busy port, or a rule test that failed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory

from prometheus_client import CollectorRegistry

from monitor import __version__, config, daemon, replay, rule_tests, shard
from monitor.brokers.clients import fetch_once
from monitor.brokers.errors import BrokerError
from monitor.config import secrets
from monitor.health import AccountStatus
from monitor.logs import Redactor, configure_logging
from monitor.metrics import Metrics
from monitor.model import ZERO, Alert, Severity, Snapshot, format_money, format_qty
from monitor.notify.base import DeliveryFailed, Sink
from monitor.notify.kind import SinkContext
from monitor.notify.registry import SINK_KINDS, close_resources, make_sinks
from monitor.printable import printable
from monitor.recording import DEFAULT_MAX_BYTES
from monitor.reload import daemon_zone, running_accounts
from monitor.rules.conditions import FiringCondition
from monitor.store import Store, StoreError
from monitor.store_thread import StoreThread

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_TESTS_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_STRICT = 1  # check --strict found an unset variable
EXIT_NOT_DELIVERED = 1  # notify test: a sink did not take its test message

NOTIFY_TEST_SECONDS = 20.0  # one sink's test message, a first getMe included


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``position-monitor`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except config.ConfigError as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        return EXIT_BAD_INPUT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="position-monitor",
        description="Watch broker positions, diff every poll, alert before a loss grows.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the daemon")
    run.add_argument("--config", type=Path, default=Path("rules.yaml"), help="rules file")
    run.add_argument("--state", type=Path, help="SQLite state file (overrides daemon.state)")
    run.add_argument("--listen", help="metrics HOST:PORT (overrides daemon.listen)")
    run.add_argument(
        "--record", type=Path, help="append every poll outcome to FILE in the replay format"
    )
    run.add_argument(
        "--record-max-bytes",
        type=_positive_int,
        default=DEFAULT_MAX_BYTES,
        metavar="N",
        help="when the record FILE would pass N bytes, rename it FILE.1 (replacing the previous"
        " one) and start a new FILE (default: 104857600, 100 MiB)",
    )
    run.add_argument(
        "--shard",
        metavar="I/N",
        help="poll only shard I of N (0 <= I < N); auto/N takes I from the pod name's ordinal"
        " (POD_NAME, else the hostname), as a StatefulSet names its pods NAME-<ordinal>",
    )
    run.set_defaults(handler=_run)

    snap = commands.add_parser(
        "snapshot", help="log in, fetch one account's positions once and print them"
    )
    snap.add_argument("account", help="the account id in the rules file")
    snap.add_argument("--config", type=Path, default=Path("rules.yaml"), help="rules file")
    snap.set_defaults(handler=_snapshot)

    check = commands.add_parser(
        "check", help="validate a rules file and name every environment variable it needs"
    )
    check.add_argument("rules", type=Path, nargs="?", default=Path("rules.yaml"))
    check.add_argument(
        "--strict", action="store_true", help="an unset environment variable is an error (exit 1)"
    )
    check.set_defaults(handler=_check)

    notify = commands.add_parser("notify", help="try the notify section's sinks")
    notify_commands = notify.add_subparsers(required=True, metavar="ACTION")
    notify_test = notify_commands.add_parser(
        "test", help="send one test message through every sink; say what to fix for each"
    )
    notify_test.add_argument("--config", type=Path, default=Path("rules.yaml"), help="rules file")
    notify_test.set_defaults(handler=_notify_test)

    rerun = commands.add_parser("replay", help="run recorded polls through the rules")
    rerun.add_argument("file", type=Path, help="JSON Lines file of poll outcomes")
    rerun.add_argument("--rules", type=Path, default=Path("rules.yaml"), help="rules file")
    rerun.add_argument("--output", choices=("text", "jsonl"), default="text")
    rerun.set_defaults(handler=_replay)

    test = commands.add_parser(
        "test",
        help="run rule tests: polls in, the alerts expected out (README, Testing your rules)",
    )
    test.add_argument("files", type=Path, nargs="+", metavar="FILE", help="rule test file")
    test.set_defaults(handler=_test)

    shards = commands.add_parser(
        "shards", help="print which of N shards polls each account: ACCOUNT SHARD lines"
    )
    shards.add_argument("count", metavar="N", help="the number of shards")
    shards.add_argument("--config", type=Path, default=Path("rules.yaml"), help="rules file")
    shards.set_defaults(handler=_shards)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number of bytes")
    return value


def _run(args: argparse.Namespace) -> int:
    loaded = config.load(args.config)
    host, port = loaded.listen
    if args.listen is not None:
        try:
            host, port = config.parse_listen(args.listen)
        except ValueError as err:
            print(f"--listen: {err}", file=sys.stderr)
            return EXIT_BAD_INPUT
    this_shard = shard.WHOLE
    if args.shard is not None:
        try:
            pod_name = os.environ.get("POD_NAME") or socket.gethostname()
            this_shard = shard.parse(args.shard, pod_name)
        except shard.ShardError as err:
            print(f"--shard: {err}", file=sys.stderr)
            return EXIT_BAD_INPUT
    # Every unset variable at once, not the first account's alone.
    required = [r for r in secrets.unset(loaded.references, os.environ) if not r.optional]
    for reference in required:
        print(reference.unset_line(loaded.path), file=sys.stderr)
    if required:
        return EXIT_BAD_INPUT
    credentials = {
        account.id: config.resolve_credentials(loaded, account, os.environ)
        for account in loaded.accounts
    }
    notify = config.resolve_notify(loaded, os.environ)
    values = [v for account in credentials.values() for v in account.values()]
    # Log times on a terminal in the zone the alerts are shown in.
    redactor = configure_logging(secrets=[*values, *notify.secrets], zone=daemon_zone(loaded))
    settings = daemon.Settings(
        args.state or loaded.state_path, host, port, credentials, args.record, notify=notify,
        record_max_bytes=args.record_max_bytes, protect=redactor.add, shard=this_shard,
        from_flags=frozenset(
            name for name, flag in (("daemon.state", args.state), ("daemon.listen", args.listen))
            if flag is not None
        ),
    )  # fmt: skip
    try:
        asyncio.run(daemon.run(loaded, settings))
    except daemon.StartupError as err:
        print(f"position-monitor: {err}", file=sys.stderr)
        return EXIT_RUNTIME
    return EXIT_OK


def _snapshot(args: argparse.Namespace) -> int:
    loaded = config.load(args.config)
    accounts = {a.id: a for a in running_accounts(loaded)}
    account = accounts.get(args.account)
    if account is None:
        known = ", ".join(accounts)
        print(f"{args.config}: no account {args.account!r}; configured: {known}", file=sys.stderr)
        return EXIT_BAD_INPUT
    secrets = config.resolve_credentials(loaded, account, os.environ)
    configure_logging(secrets=secrets.values())
    try:
        snapshot = asyncio.run(fetch_once(loaded, account, secrets))
    except BrokerError as err:
        # A broker may echo what it was sent in its error text.
        reason = Redactor(secrets.values()).scrub(str(err))
        print(f"position-monitor: account {account.id}: {reason}", file=sys.stderr)
        return EXIT_RUNTIME
    print(positions_table(snapshot))
    return EXIT_OK


def positions_table(snapshot: Snapshot) -> str:
    """The positions as an aligned table, with the account's total MTM underneath."""
    header = ("SYMBOL", "SEGMENT", "PRODUCT", "NET QTY", "LTP", "MTM")
    rows = [
        (
            printable(p.symbol),  # broker text: a newline would print a fake row
            printable(p.key.exchange_segment),
            printable(p.key.product) or "-",
            format_qty(p.net_qty),
            "-" if p.ltp is None else format_money(p.ltp),
            "unknown" if p.mtm is None else format_money(p.mtm),
        )
        for p in snapshot.positions.values()
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        left = [c.ljust(w) for c, w in zip(cells[:3], widths[:3], strict=True)]
        right = [c.rjust(w) for c, w in zip(cells[3:], widths[3:], strict=True)]
        return "  ".join(left + right).rstrip()

    known = [p.mtm for p in snapshot.positions.values() if p.mtm is not None]
    unknown = len(snapshot.positions) - len(known)
    total = format_money(sum(known, ZERO))
    footer = f"{_plural(len(rows), 'position')} at {snapshot.taken_at.isoformat()}; MTM {total}"
    if unknown:
        footer += f" ({unknown} without a price)"
    return "\n".join([line(header), *(line(r) for r in rows), footer])


def _check(args: argparse.Namespace) -> int:
    loaded = config.load(args.rules)
    kinds = Counter(rule.kind for rule in loaded.rules)
    by_kind = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    count = len(loaded.accounts)
    accounts = (
        _plural(count, "account") if count else "no accounts (run uses the built-in simulator)"
    )
    rules = _plural(len(loaded.rules), "rule")
    sinks = ", ".join(
        f"{s.name} (optional)" if SINK_KINDS[s.kind].optional(s) else s.name for s in loaded.sinks
    )
    for warning in loaded.warnings_on(datetime.now(UTC).date()):
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{args.rules}: OK: {accounts}; {rules} ({by_kind}); sinks: {sinks}")
    unset = secrets.unset(loaded.references, os.environ)
    for reference in unset:
        line = reference.unset_line(args.rules)
        print(line if args.strict else f"warning: {line}", file=sys.stderr)
    return EXIT_STRICT if unset and args.strict else EXIT_OK


def _notify_test(args: argparse.Namespace) -> int:
    """One test message through every sink, and per sink: delivered, or what to fix."""
    loaded = config.load(args.config)
    unset: dict[str, list[str]] = {}  # notify entry -> its unset variables
    for reference in secrets.unset(loaded.references, os.environ):
        if reference.section == "notify":
            unset.setdefault(reference.entry, []).append(reference.variable)
    ready = tuple(s for s in loaded.sinks if _entry_of(s.name) not in unset)
    notify = config.resolve_notify(replace(loaded, sinks=ready), os.environ)
    redactor = configure_logging(secrets=notify.secrets)
    logging.getLogger().setLevel(logging.WARNING)  # the report is the output, not the logs
    # The kinds build their command loops too, which keep state; notify test never runs
    # them, and must not touch the state file of a daemon that may be running.
    with TemporaryDirectory(prefix="position-monitor-notify-test-") as scratch:
        results = asyncio.run(
            _send_tests(loaded, notify, redactor.scrub, Store(Path(scratch) / "state.db"))
        )
    failed = 0
    for sink in loaded.sinks:
        missing = unset.get(_entry_of(sink.name))
        if missing:
            noun, verb = ("variable", "is") if len(missing) == 1 else ("variables", "are")
            result = f"not sent: {noun} {', '.join(missing)} {verb} unset"
        else:
            result = results[sink.name]
        failed += result != "delivered"
        print(f"{sink.name}: {result}")
    return EXIT_NOT_DELIVERED if failed else EXIT_OK


def _entry_of(destination: str) -> str:
    """The notify entry a destination belongs to: a destination is named after its entry,
    a Telegram chat ``ENTRY:CHAT`` (a name holds no ':')."""
    return destination.partition(":")[0]


async def _send_tests(
    loaded: config.Config, notify: config.Notify, redact: Callable[[str], str], store: Store
) -> dict[str, str]:
    """Each sink's outcome: "delivered" or "not delivered: <what went wrong and its fix>"."""
    thread = StoreThread(store)
    zone = daemon_zone(loaded)
    test = Alert(
        "notify-test", "test", Severity.INFO, "position-monitor", None, None,
        datetime.now(UTC), "Test message from position-monitor notify test: alerts reach"
        " this destination.", {},
    )  # fmt: skip
    context = SinkContext(
        redact=redact, zones={test.account: zone}, timezone=zone, view=_NoDaemon(loaded),
        store=thread, clock=lambda: datetime.now(UTC),
        metrics=Metrics(CollectorRegistry()),  # a one-shot test: nothing scrapes its counts
    )  # fmt: skip
    built = make_sinks(notify, context)
    try:
        outcomes = await asyncio.gather(*(_send_test(sink, test) for sink in built.sinks))
    finally:
        for sink in built.sinks:
            await sink.close()
        await close_resources(built.resources)
        await thread.close(daemon.CLOSE_SECONDS)
    return dict(zip((sink.name for sink in built.sinks), outcomes, strict=True))


async def _send_test(sink: Sink, test: Alert) -> str:
    try:
        async with asyncio.timeout(NOTIFY_TEST_SECONDS):
            await sink.send([test])
    except DeliveryFailed as err:
        return f"not delivered: {err.detail}"
    except TimeoutError:
        return f"not delivered: no answer within {NOTIFY_TEST_SECONDS:g} s"
    return "delivered"


class _NoDaemon:
    """The daemon as ``notify test``'s sinks see it: none runs, nothing is polled or firing."""

    def __init__(self, loaded: config.Config) -> None:
        self._rules = [rule.name for rule in loaded.rules]

    def statuses(self) -> list[AccountStatus]:
        return []

    def snapshot(self, account: str) -> Snapshot | None:
        return None

    def rule_names(self) -> Sequence[str]:
        return self._rules

    def firing_conditions(self) -> list[FiringCondition]:
        return []


def _shards(args: argparse.Namespace) -> int:
    try:
        count = shard.parse_count(args.count)
    except shard.ShardError as err:
        print(f"shards: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    loaded = config.load(args.config)
    # The accounts `run` would poll: the simulator's when the file has none.
    accounts = running_accounts(loaded)
    for account, index in shard.assign((a.id for a in accounts), count):
        print(f"{account} {index}")
    return EXIT_OK


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' * (count != 1)}"


def _replay(args: argparse.Namespace) -> int:
    loaded = config.load(args.rules)
    configure_logging()  # standard output is the alerts'

    def emit(alert: Alert) -> None:
        print(alert.to_jsonl() if args.output == "jsonl" else alert.to_line(), flush=True)

    def warn(message: str) -> None:
        print(message, file=sys.stderr)

    try:
        replay.replay(args.file, loaded, emit, warn)
    except replay.ReplayLineError as err:
        print(err, file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as err:
        print(f"{args.file}: cannot read: {err.strerror or err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except StoreError as err:
        print(f"position-monitor: {err}", file=sys.stderr)
        return EXIT_RUNTIME
    return EXIT_OK


def _test(args: argparse.Namespace) -> int:
    configure_logging()  # standard output is the report's
    files, problems = [], []
    for path in args.files:
        try:
            files.append(rule_tests.load(path))
        except config.ConfigError as err:
            problems += err.problems
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        return EXIT_BAD_INPUT
    results = []
    for test_file in files:
        file_results = rule_tests.run(test_file)
        rule_tests.report(test_file.path, file_results, print)
        results += file_results
    failed = sum(not result.passed for result in results)
    print(f"{_plural(len(results), 'test')}: {len(results) - failed} passed, {failed} failed")
    return EXIT_TESTS_FAILED if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
