"""rules.yaml read into mappings and lists that remember their line numbers.

The loader is PyYAML's SafeLoader extended only to keep line numbers and to reject duplicate
keys, which plain YAML would silently overwrite.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from monitor.config.errors import ConfigError

MAX_RULES_BYTES = 1024 * 1024  # a rules file with every account of a desk is a few kB


class LineMap(dict[Any, Any]):
    """A YAML mapping that remembers the line of itself and of each key."""

    line: int = 0
    key_lines: dict[Any, int]

    @classmethod
    def empty(cls) -> LineMap:
        """The document of an empty file."""
        mapping = cls()
        mapping.line, mapping.key_lines = 1, {}
        return mapping

    def line_of(self, key: str) -> int:
        """The line of ``key``, or of the mapping itself when the key is absent."""
        return self.key_lines.get(key, self.line)


class LineList(list[Any]):
    """A YAML sequence that remembers the line of each item."""

    item_lines: list[int]


def open_regular(path: Path) -> BinaryIO:
    """``path`` opened for reading; OSError unless it is a regular file (a FIFO would block, a
    device such as /dev/zero never ends)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens without waiting for a writer
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_text(path: Path) -> str:
    """The UTF-8 text of ``path``, a regular file within MAX_RULES_BYTES; ConfigError if not."""
    try:
        with open_regular(path) as file:
            data = file.read(MAX_RULES_BYTES + 1)
        if len(data) > MAX_RULES_BYTES:
            raise ConfigError([f"{path}: cannot read: larger than {MAX_RULES_BYTES} bytes"])
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError([f"{path}: cannot read: {err}"]) from err


def read_yaml(path: Path) -> object:
    """The YAML document in ``path``, of LineMaps and LineLists; ConfigError when unreadable."""
    text = read_text(path)
    try:
        return yaml.load(text, Loader=LineLoader)  # noqa: S506 - a SafeLoader subclass adding no tags  # nosec B506
    except RecursionError as err:
        raise ConfigError([f"{path}: invalid YAML: nested too deeply"]) from err
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError([f"{path}: invalid YAML: {err.problem}{where}"]) from err
    except yaml.YAMLError as err:
        raise ConfigError([f"{path}: invalid YAML: {err}"]) from err


class LineLoader(yaml.SafeLoader):
    """SafeLoader building LineMaps and LineLists; it adds no tags."""


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _construct_mapping(loader: LineLoader, node: yaml.MappingNode) -> LineMap:
    written = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE_TAG)
    loader.flatten_mapping(node)  # merged (<<) pairs first, then the ones written here
    first_written = len(node.value) - written
    mapping = LineMap()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    written_keys = set()
    for position, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool):
            raise yaml.constructor.ConstructorError(
                None, None, "mapping keys must be plain scalars", key_node.start_mark
            )
        if position >= first_written:
            # A key written twice is a mistake; a written key overriding a merged one is not.
            if key in written_keys:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            written_keys.add(key)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = key_node.start_mark.line + 1
    return mapping


def _construct_sequence(loader: LineLoader, node: yaml.SequenceNode) -> LineList:
    sequence = LineList(loader.construct_object(child, deep=True) for child in node.value)
    sequence.item_lines = [child.start_mark.line + 1 for child in node.value]
    return sequence


LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def _construct_timestamp(loader: LineLoader, node: yaml.ScalarNode) -> object:
    """A date or time stamp; one that is no real date (2026-02-30) is a marked error."""
    try:
        return loader.construct_yaml_timestamp(node)
    except ValueError as err:
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.value!r} is not a date: {err}", node.start_mark
        ) from err


LineLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)
