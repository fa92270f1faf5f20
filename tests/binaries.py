"""Debian packages unpacked for tests, and the servers their binaries run.

``apt-get download PACKAGE`` + ``dpkg -x``: the files without installing the package, so no
system service starts. Each package is unpacked once into ``.cache/<name>/root``, under a lock
(two test runs must not unpack at once). Nothing here skips: a machine that cannot fetch a
package fails the tests that need it, with the reason.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _apt(*args: str, cwd: Path, package: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        return subprocess.run(
            ["apt-get", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300,
            check=False,
        )  # fmt: skip
    except FileNotFoundError:
        pytest.fail(
            f"apt-get not found: these tests need Debian's '{package}' package"
            f" (apt-get download {package}); run them on Debian or Ubuntu",
            pytrace=False,
        )


def download(into: Path, package: str) -> Path:
    """``apt-get download PACKAGE`` into ``into``; ``apt-get update`` first if needed."""
    result = _apt("download", package, cwd=into, package=package)
    if result.returncode != 0:
        # A fresh container has empty package lists: apt knows of no package until updated.
        if os.geteuid() != 0:
            pytest.fail(
                f"apt-get download {package} failed and only root can run apt-get update:\n"
                f"{result.stderr.strip()}\nRun 'sudo apt-get update' once, or run the tests as"
                " root.",
                pytrace=False,
            )
        update = _apt("update", "-qq", cwd=into, package=package)
        if update.returncode != 0:
            pytest.fail(
                f"apt-get download {package} failed, and so did apt-get update; these tests"
                f" need Debian's package from a mirror:\n{update.stderr.strip()}",
                pytrace=False,
            )
        result = _apt("download", package, cwd=into, package=package)
    debs = sorted(into.glob(f"{package}_*.deb"))
    if result.returncode != 0 or not debs:
        pytest.fail(
            f"apt-get download {package} failed (exit {result.returncode}); these tests"
            f" need Debian's package from a mirror:\n{result.stderr.strip()}",
            pytrace=False,
        )
    return debs[-1]


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock: two test runs must not unpack into the cache at once."""
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def unpacked(package: str, cache: Path, *needed: str) -> Path:
    """The root ``package`` is unpacked into under ``cache``, downloading and unpacking it
    unless every ``needed`` file (a path inside the package) is already there."""
    root = cache / "root"
    cache.mkdir(parents=True, exist_ok=True)
    with locked(cache / ".lock"):
        if all((root / path).is_file() for path in needed):
            return root
        with tempfile.TemporaryDirectory(dir=cache) as work:
            staging = Path(work)
            deb = download(staging, package)
            extract = subprocess.run(
                ["dpkg", "-x", str(deb), str(staging / "root")],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if extract.returncode != 0:
                pytest.fail(f"dpkg -x {deb.name} failed:\n{extract.stderr.strip()}", pytrace=False)
            shutil.rmtree(root, ignore_errors=True)
            (staging / "root").rename(root)
    if missing := [path for path in needed if not (root / path).is_file()]:
        pytest.fail(f"the {package} package holds no {', '.join(missing)}", pytrace=False)
    return root


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """A server binary listening on 127.0.0.1 that answers ``GET /-/ready`` (Prometheus and
    Alertmanager do), its output kept in one log file. ``stop()`` and ``start()`` again keep
    its port and log. A subclass names itself and sets ``command`` from ``port``."""

    name = "the server"

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.command: list[str] = []
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        """Start the process; wait_ready() before asking it anything."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        return self

    def logs(self) -> str:
        """What the server printed so far (every run of it)."""
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait for /-/ready; fail with the server's output if it never is."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                break
            ready = f"http://127.0.0.1:{self.port}/-/ready"
            with contextlib.suppress(OSError), urllib.request.urlopen(ready, timeout=5) as answer:
                if answer.status == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"{self.name} never became ready; its output:\n{self.logs()}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
