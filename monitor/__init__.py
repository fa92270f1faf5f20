"""position-monitor: watches broker accounts, diffs their positions, alerts before a loss grows."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("position-monitor")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
