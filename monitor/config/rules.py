"""The rules section of rules.yaml: the fields every rule has, then its kind's own ``build``."""

from __future__ import annotations

from monitor.config.problems import Problems
from monitor.config.yaml_lines import LineMap
from monitor.model import Severity
from monitor.rules.base import PositionFilter, Rule, RuleConfigError
from monitor.rules.registry import RULE_KINDS

_FILTERS = ("accounts", "segments", "products", "symbols")
_COMMON = ("name", "kind", "severity", *_FILTERS)


def read_rules(problems: Problems, document: LineMap) -> tuple[Rule, ...]:
    """Every well-formed rule; each problem of the others goes to ``problems``."""
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(problems.entries(document, "rules", required=True)):
        name = entry.get("name")
        owner = f"rule '{name}'" if isinstance(name, str) and name else f"rules[{index}]"
        before = len(problems)
        if not isinstance(name, str) or not name.strip():
            problems.problem(owner, "name", "required: a non-empty string", entry.line_of("name"))
        elif name in seen:
            reason = f"duplicate of the rule on line {seen[name]}"
            problems.problem(owner, "name", reason, entry.line_of("name"))
        else:
            seen[name] = entry.line
        kind = entry.get("kind")
        builder = RULE_KINDS.get(kind) if isinstance(kind, str) else None
        if builder is None:
            got = "missing" if kind is None else f"unknown kind {kind!r}"
            reason = f"{got}; expected one of {', '.join(RULE_KINDS)}"
            problems.problem(owner, "kind", reason, entry.line_of("kind"))
        severity = problems.severity(entry, owner, Severity.WARNING)
        filters = PositionFilter(**{f: problems.globs(entry, f, owner) for f in _FILTERS})
        if builder is None or len(problems) > before:
            continue
        # The kind's own fields are the rest; its build refuses the ones it does not know.
        options = {k: v for k, v in entry.items() if k not in _COMMON}
        try:
            rules.append(builder(str(name), severity, filters, options))
        except RuleConfigError as err:
            problems.problem(owner, err.field, err.reason, entry.line_of(err.field))
    return tuple(rules)
