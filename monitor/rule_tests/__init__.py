"""``position-monitor test``: unit tests of rules, the way ``promtool test rules`` tests
Prometheus alerting rules (README "Testing your rules").

A test file names a rules file and lists tests. Each test is a sequence of polls of one account
(``generic`` rows written in the test, or a broker's own response parsed by its real parser)
fed through the daemon's engine against an in-memory store, as ``replay`` does; the alerts it
produces must be exactly the expected ones, in order, each matching on the fields it gives.

``reading`` checks a test file into the cases of ``cases`` (its polls are ``polls``'s),
``running`` feeds each test through the engine, ``matching`` pairs expected with produced
alerts, and ``report`` prints the outcome.
"""

from __future__ import annotations

from monitor.rule_tests.reading import load
from monitor.rule_tests.report import report
from monitor.rule_tests.running import run

__all__ = ["load", "report", "run"]
