"""YAML documents with source positions, so every error can point at its line and column."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[str | int, ...]


@dataclass
class Positions:
    """1-based (line, col) of every value and mapping key in one document."""

    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    duplicates: list[tuple[Path, tuple[int, int]]] = field(default_factory=list)

    def of_value(self, path: Path) -> tuple[int, int]:
        """Position of the value at `path`, or of its nearest existing ancestor."""
        for i in range(len(path), -1, -1):
            if path[:i] in self.values:
                return self.values[path[:i]]
        return (1, 1)

    def of_key(self, path: Path) -> tuple[int, int]:
        return self.keys.get(path) or self.of_value(path)


@dataclass
class Document:
    data: Any
    positions: Positions
    start_line: int


def _mark(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _walk(node: yaml.Node, path: Path, positions: Positions) -> None:
    positions.values[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = (*path, key)
            if key in seen:
                positions.duplicates.append((child, _mark(key_node)))
            seen.add(key)
            positions.keys[child] = _mark(key_node)
            _walk(value_node, child, positions)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), positions)


def parse_documents(text: str) -> list[Document]:
    """Parse every document of a YAML stream; raises `yaml.YAMLError` with a mark."""
    loader = yaml.SafeLoader(text)
    documents: list[Document] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # an empty stream
                break
            positions = Positions()
            _walk(node, (), positions)
            data = loader.construct_document(node)
            documents.append(Document(data, positions, node.start_mark.line + 1))
    finally:
        loader.dispose()
    return documents
