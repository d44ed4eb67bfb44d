"""YAML documents with source positions, so every error can point at its line and column.

Parsing is bounded, because a spec is untrusted input: nesting depth, scalar length,
documents per file and the node count *after alias expansion* are limited before any
Python object is built. An alias bomb ("billion laughs", also through `<<` merge keys)
or a deeply nested file then fails in milliseconds with a located error instead of
taking minutes and gigabytes, or crashing with a `RecursionError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[str | int, ...]

MAX_DEPTH = 64            # a real spec nests about 5 levels
MAX_NODES = 20_000        # per file, aliases expanded; a real pipeline has about 100
MAX_DOCUMENTS = 256       # pipelines per file
MAX_SCALAR_CHARS = 16_384  # a template is at most 4,000 characters
MAX_INT_DIGITS = 40       # larger integers are never a valid setting
_INT_TAG = "tag:yaml.org,2002:int"
_SHRINK = ("a pipeline spec is small: remove the aliases or nesting that blow it up, or split "
           "the file")


class YamlLimitError(yaml.MarkedYAMLError):
    """A document beyond the parser's bounds; reported like a syntax error, with a rule."""

    rule = "yaml-limit"

    def __init__(self, problem: str, mark: yaml.Mark | None, hint: str = _SHRINK) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.hint = hint


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


class _BoundedLoader(yaml.SafeLoader):
    """`SafeLoader` whose composer stops at `MAX_DEPTH` levels (it recurses) and at
    `MAX_NODES` nodes, before building more."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0  # in the whole file, so a huge flat file stops early too

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self._depth += 1
        self._nodes += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YamlLimitError(f"nesting is deeper than {MAX_DEPTH} levels",
                                     self.peek_event().start_mark)
            if self._nodes > MAX_NODES:
                raise YamlLimitError(f"the file holds more than {MAX_NODES:,} YAML nodes",
                                     self.peek_event().start_mark)
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """A value PyYAML cannot build (`2020-99-99`, a bad `!!binary`) is a located error."""
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read this value ({exc})", node.start_mark) from None


@dataclass
class _Budget:
    """Nodes left for the rest of the file, and sizes of subtrees already measured."""

    nodes_left: int = MAX_NODES
    measured: dict[int, tuple[int, int]] = field(default_factory=dict)  # id -> (size, height)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_scalar(node: yaml.Node) -> None:
    if not isinstance(node, yaml.ScalarNode):
        return
    if len(node.value) > MAX_SCALAR_CHARS:
        raise YamlLimitError(f"a value of {len(node.value):,} characters is longer than the "
                             f"{MAX_SCALAR_CHARS:,} allowed", node.start_mark,
                             hint="keep long text out of the spec")
    if node.tag == _INT_TAG and len(node.value) > MAX_INT_DIGITS:
        raise YamlLimitError(f"an integer of {len(node.value)} digits is too large",
                             node.start_mark, hint="no setting takes a number this large")


def _measure(node: yaml.Node, depth: int, budget: _Budget, active: set[int]) -> tuple[int, int]:
    """(node count with every alias expanded, height), in time linear in the graph.

    Shared (aliased) subtrees are measured once and then counted at every use, so the
    expanded size is known without expanding anything; cycles and depth are refused.
    """
    key = id(node)
    if key in active:
        raise YamlLimitError("an alias refers to the node that contains it (a cycle)",
                             node.start_mark)
    known = budget.measured.get(key)
    if known is None:
        _check_scalar(node)
        active.add(key)
        size, height = 1, 1
        for child in _children(node):
            if depth >= MAX_DEPTH:
                raise YamlLimitError(f"nesting (aliases expanded) is deeper than {MAX_DEPTH} "
                                     "levels", child.start_mark)
            child_size, child_height = _measure(child, depth + 1, budget, active)
            size, height = size + child_size, max(height, child_height + 1)
        active.discard(key)
        known = budget.measured[key] = (size, height)
    if depth + known[1] - 1 > MAX_DEPTH:
        raise YamlLimitError(f"nesting (aliases expanded) is deeper than {MAX_DEPTH} levels",
                             node.start_mark)
    if known[0] > budget.nodes_left:
        raise YamlLimitError(f"the file expands to more than {MAX_NODES:,} YAML nodes (through "
                             "aliases, merge keys or sheer size)", node.start_mark)
    return known


def parse_documents(text: str) -> list[Document]:
    """Parse every document of a YAML stream; raises `yaml.YAMLError` with a mark
    (`YamlLimitError` for a stream beyond the bounds)."""
    loader = _BoundedLoader(text)
    documents: list[Document] = []
    budget = _Budget()
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # an empty stream
                break
            if len(documents) == MAX_DOCUMENTS:
                raise YamlLimitError(f"the file holds more than {MAX_DOCUMENTS} documents",
                                     node.start_mark, hint="split it into several files")
            budget.measured.clear()  # ids are only unique while the document's nodes live
            budget.nodes_left -= _measure(node, 1, budget, set())[0]
            positions = Positions()
            _walk(node, (), positions)
            data = loader.construct_document(node)
            documents.append(Document(data, positions, node.start_mark.line + 1))
    finally:
        loader.dispose()
    return documents
