"""The sink registry: each kind is read, resolved and built by its own package."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import ConfigError, load
from monitor.config.routing import ROUTING_FIELDS
from monitor.notify.console.config import read_config
from monitor.notify.kind import SinkKind
from monitor.notify.registry import SINK_KINDS


def test_every_kind_is_registered_under_its_own_name() -> None:
    """The registry's key is the kind's ``kind:`` value, and every kind can be built."""
    assert set(SINK_KINDS) >= {"console", "telegram"}
    for name, kind in SINK_KINDS.items():
        assert kind.name == name
        assert callable(kind.build)


def test_a_kind_without_a_builder_cannot_exist() -> None:
    """Leaving out ``build`` fails where the kind is declared, not as a console sink later."""
    with pytest.raises(TypeError):
        SinkKind("pager", ROUTING_FIELDS, read_config)  # type: ignore[call-arg]


def test_an_unknown_kind_names_the_known_ones(tmp_path: Path) -> None:
    """A kind missing from the registry is a config problem with its line."""
    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules: [{name: r, kind: new_short}]\nnotify:\n  - kind: pager\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as caught:
        load(path)
    expected = ", ".join(SINK_KINDS)
    assert caught.value.problems == [
        f"{path}: notify 'pager': kind: unknown sink kind 'pager'; expected one of {expected}"
        " (line 3)"
    ]
