"""Specs are untrusted input: no YAML shape may make loading slow, deep or memory-hungry.

Each bomb must come back as one located `yaml-limit` error, before anything is expanded.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from v10r.spec.load import load_paths
from v10r.spec.yaml_nodes import MAX_DEPTH, MAX_DOCUMENTS, MAX_NODES, parse_documents

pytestmark = pytest.mark.unit

VALID = "name: docs\nsource: {table: docs, columns: [body]}\n"


def _laughs(levels: int, fanout: int) -> str:
    lines = [f"l0: &a0 [{', '.join(['lol'] * fanout)}]"]
    lines += [f"l{i}: &a{i} [{', '.join([f'*a{i - 1}'] * fanout)}]" for i in range(1, levels)]
    return VALID + "\n".join(lines) + "\n"


def _merge_bomb(levels: int) -> str:
    lines = ["m0: &m0 {k: v}"]
    lines += [f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 9)}]}}" for i in range(1, levels)]
    return VALID + "\n".join(lines) + "\n"


BOMBS = {
    "billion-laughs": _laughs(10, 10),
    "wide-fanout": _laughs(3, 200),
    "merge-keys": _merge_bomb(12),
    "deep-flow-list": "name: " + "[" * 1000 + "]" * 1000 + "\n",
    "deep-flow-mapping": "name: " + "{a: " * 1000 + "1" + "}" * 1000 + "\n",
    "deep-block-mapping": "".join(" " * i + f"k{i}:\n" for i in range(200)),
    "deep-block-list": "".join(" " * (2 * i) + "-\n" for i in range(200)),
    "alias-chain": "a0: &a0 [x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 200)),
    "alias-cycle": "a: &a [*a]\n",
    "mapping-cycle": "a: &a {b: *a}\n",
    "huge-scalar": "name: docs\ndescription: " + "x" * 100_000 + "\n",
    "huge-integer": VALID + "embedding: {dimensions: " + "9" * 5000 + "}\n",
    "huge-integer-in-list": VALID + "x: [1, " + "1" * 4400 + "]\n",
    "many-documents": "---\n" * 20_000,
    "many-keys": "".join(f"k{i}: v\n" for i in range(MAX_NODES)),
    "long-flow-list": "name: [" + ", ".join(["1"] * MAX_NODES) + "]\n",
    "file-sized-flat-list": "a: [" + "1," * 120_000 + "]\n",
    "file-sized-block-list": "- 1\n" * 60_000,
}


@pytest.mark.parametrize("text", BOMBS.values(), ids=BOMBS.keys())
def test_bomb_is_one_located_error_with_bounded_memory(text: str, tmp_path: Path) -> None:
    spec = tmp_path / "bomb.yaml"
    spec.write_text(text)
    tracemalloc.start()
    try:
        result = load_paths([spec], environ={})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * 1024 * 1024
    [error] = result.errors
    assert error.rule == "yaml-limit", error.render()
    assert error.render().startswith(f"{spec}:{error.line}:{error.col}: error: ")
    assert error.hint and not result.pipelines


def test_limits_leave_room_for_real_specs(tmp_path: Path) -> None:
    """Anchors, aliases and merge keys within the limits keep working."""
    spec = tmp_path / "anchors.yaml"
    spec.write_text(
        "name: a\nsource: {table: docs, columns: [body]}\n"
        "embedding: &emb {provider: local, batch_size: 32}\n"
        "---\n"
        "name: b\nsource: {table: docs, columns: [title]}\n"
        "embedding: &e2 {<<: {provider: local}, batch_size: 16}\n"
        "queue: &q {kind: memory}\n"
    )
    result = load_paths([spec], environ={})
    assert result.errors == []
    assert [p.pipeline.embedding.batch_size for p in result.pipelines] == [32, 16]


def test_exact_bounds() -> None:
    """Nesting up to the limit loads; one more level does not."""
    assert parse_documents("a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1))
    with pytest.raises(Exception, match="deeper than"):
        parse_documents("a: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH)
    assert len(parse_documents("---\nname: x\n" * MAX_DOCUMENTS)) == MAX_DOCUMENTS
    with pytest.raises(Exception, match="more than"):
        parse_documents("---\nname: x\n" * (MAX_DOCUMENTS + 1))


def test_node_budget_spans_the_whole_file() -> None:
    """Many documents just under the budget each still add up to one error."""
    doc = "k: [" + ", ".join(["1"] * (MAX_NODES // 10)) + "]\n"
    with pytest.raises(Exception, match="YAML nodes"):
        parse_documents(("---\n" + doc) * 11)


def test_file_size_is_bounded(tmp_path: Path) -> None:
    from v10r.spec.load import MAX_FILE_BYTES

    spec = tmp_path / "big.yaml"
    spec.write_text(VALID + "#" * (MAX_FILE_BYTES - len(VALID) + 1))
    [error] = load_paths([spec], environ={}).errors
    assert error.rule == "file-too-large" and (error.line, error.col) == (1, 1)
    spec.write_text(VALID + "#" * (MAX_FILE_BYTES - len(VALID) - 1))
    assert load_paths([spec], environ={}).errors == []
