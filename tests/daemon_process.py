"""Runs the real daemon as a subprocess and reads what it says, for end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any


class DaemonProcess:
    """``python -m monitor run`` with alerts (stdout) and JSON logs (stderr) collected."""

    def __init__(
        self,
        config: Path,
        state: Path,
        *extra: str,
        env: Mapping[str, str] | None = None,
        user: int | None = None,
    ) -> None:
        self.command = [
            sys.executable, "-m", "monitor", "run",
            "--config", str(config), "--state", str(state), "--listen", "127.0.0.1:0", *extra,
        ]  # fmt: skip
        self.env = dict(env or {})  # added to this process's environment
        self.user = user  # run as this uid (and the same gid) when the tests run as root
        self.stdout_lines: list[str] = []
        self.log_lines: list[str] = []
        self._events: queue.Queue[tuple[str, str]] = queue.Queue()
        self.process: subprocess.Popen[str] | None = None
        self._readers: list[threading.Thread] = []

    def start(self) -> DaemonProcess:
        """Start the daemon; its output is read on background threads."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        command = self.command
        if self.user is not None:  # util-linux setpriv: that uid and gid, no groups, no caps
            ids = [f"--reuid={self.user}", f"--regid={self.user}", "--clear-groups"]
            command = ["setpriv", *ids, *command]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            threading.Thread(target=self._pump, args=(stream, sink, name), daemon=True)
            for stream, sink, name in (
                (self.process.stdout, self.stdout_lines, "stdout"),
                (self.process.stderr, self.log_lines, "stderr"),
            )
        ]
        for reader in self._readers:
            reader.start()
        return self

    def _pump(self, stream: IO[str], sink: list[str], name: str) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))
            self._events.put((name, line))

    def logs(self) -> list[dict[str, Any]]:
        """Every JSON log event so far (non-JSON lines are skipped)."""
        events = []
        for line in list(self.log_lines):
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert printed so far by a console sink in json format."""
        return [json.loads(line) for line in list(self.stdout_lines) if line.startswith("{")]

    def wait_for(self, predicate: Any, timeout: float, what: str) -> Any:
        """Wait until ``predicate(self)`` is truthy; fail with the logs if it never is (or the
        process ended without it, once every line it wrote has been read)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = predicate(self)
            if result:
                return result
            if self.process is not None and self.process.poll() is not None:
                self.read_to_the_end()
                if result := predicate(self):
                    return result
                break
            with contextlib.suppress(queue.Empty):
                self._events.get(timeout=0.1)
        raise AssertionError(f"timed out waiting for {what}; logs:\n" + "\n".join(self.log_lines))

    def wait_for_log(self, event: str, timeout: float = 60) -> dict[str, Any]:
        """The first log event named ``event``."""

        def found(daemon: DaemonProcess) -> dict[str, Any] | None:
            return next((e for e in daemon.logs() if e.get("event") == event), None)

        return self.wait_for(found, timeout, f"log event {event}")  # type: ignore[no-any-return]

    def port(self) -> int:
        """The metrics port the daemon bound."""
        started = self.wait_for_log("daemon_started")
        return int(started["listen"].rsplit(":", 1)[1])

    def kill9(self) -> None:
        """SIGKILL: no cleanup of any kind."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=60)
        self.read_to_the_end()

    def read_to_the_end(self) -> None:
        """Every line the ended process wrote: its pipes close when it exits."""
        for reader in self._readers:
            reader.join(timeout=60)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM; the exit status once every line the process wrote has been read (the
        timeout only guards against a hang)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        status = self.process.wait(timeout=timeout)
        self.read_to_the_end()
        return status

    def stop(self) -> None:
        """Make sure the process is gone (test cleanup)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
