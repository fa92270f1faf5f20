"""What rules.yaml means when it leaves a field out, and the bounds of what it may say."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

DEFAULT_POLL_EVERY = timedelta(seconds=5)
SIMULATOR_POLL_EVERY = timedelta(seconds=2)
DEFAULT_TIMEOUT = timedelta(seconds=10)  # or 80% of poll_every, whichever is shorter
DEFAULT_CONNECT_TIMEOUT = timedelta(seconds=5)
DEFAULT_ALERT_AFTER = timedelta(minutes=1)  # or three poll intervals, whichever is longer
DEFAULT_STATE_PATH = Path("position-monitor.db")
DEFAULT_LISTEN = ("127.0.0.1", 9650)
# poll_every, timeout, connect_timeout and alert_after alike.
DURATION_BOUNDS = (timedelta(milliseconds=500), timedelta(days=1))
