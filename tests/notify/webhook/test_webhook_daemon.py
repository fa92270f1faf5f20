"""The daemon as a subprocess delivering the simulator's alerts to a signed webhook."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.daemon_process import DaemonProcess
from tests.leaks import assert_no_secret_leaks
from tests.notify.webhook.test_webhook import verify

SECRET = "daemon-whsec-91b2c3d4e5f6"


class Received:
    """Every request body the receiver accepted, and how many failed verification."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, object]] = []
        self.unverified = 0
        self.lock = threading.Lock()

    def alerts(self) -> list[dict[str, object]]:
        with self.lock:
            return [a for b in self.bodies for a in b["alerts"]]  # type: ignore[attr-defined]


@pytest.fixture
def receiver() -> Iterator[tuple[str, Received]]:
    received = Received()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            ok = verify(SECRET, dict(self.headers), body, time.time())
            with received.lock:
                if ok:
                    received.bodies.append(json.loads(body))
                else:
                    received.unverified += 1
            self.send_response(204 if ok else 401)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            """Quiet: the test reads what was received instead."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
    server.server_close()


def test_the_daemon_posts_signed_alerts_that_match_the_console(
    tmp_path: Path, receiver: tuple[str, Received]
) -> None:
    url, received = receiver
    config = tmp_path / "rules.yaml"
    config.write_text(
        "accounts:\n  - {id: sim, broker: simulator, poll_every: 500ms, seed: 3}\n"
        "rules:\n  - {name: fresh-short, kind: new_short}\n"
        "  - {name: gone, kind: squared_off}\n"
        "notify:\n  - {kind: console, format: json}\n"
        f"  - {{kind: webhook, name: desk, url: '{url}', secret: '${{DESK_WEBHOOK_SECRET}}'}}\n",
        encoding="utf-8",
    )
    daemon = DaemonProcess(config, tmp_path / "state.db", env={"DESK_WEBHOOK_SECRET": SECRET})
    daemon.start()
    try:
        daemon.wait_for(lambda _: len(received.alerts()) >= 3, 90, "three alerts at the webhook")
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
    assert received.unverified == 0
    posted = received.alerts()
    ids = [a.pop("id") for a in posted]
    assert len(set(ids)) == len(ids)
    printed = daemon.alerts()
    assert posted == printed[: len(posted)]
    assert_no_secret_leaks([SECRET], *daemon.log_lines, *daemon.stdout_lines)
