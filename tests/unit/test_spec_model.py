"""The spec language: examples load, defaults apply, the committed schema matches the code."""

from __future__ import annotations

import json
from pathlib import Path

import pydantic
import pytest

from v10r.spec.load import load_paths
from v10r.spec.model import Pipeline, json_schema

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.unit


def test_committed_schema_is_generated_from_the_models() -> None:
    committed = json.loads((ROOT / "schemas" / "pipeline.schema.json").read_text())
    assert committed == json_schema(), "run `v10r schema > schemas/pipeline.schema.json`"


def test_schema_is_draft_2020_12_with_docs_for_editors() -> None:
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    embedding = schema["$defs"]["Embedding"]["properties"]
    assert embedding["provider"]["description"] and embedding["provider"]["default"] == "local"
    assert "examples" in embedding["api_key"]


@pytest.mark.parametrize("path", sorted((ROOT / "pipelines").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_example_pipeline_is_valid(path: Path) -> None:
    result = load_paths([path], environ={})
    assert result.errors == []
    assert len(result.pipelines) == 1
    assert path.read_text().startswith("# yaml-language-server: $schema=../schemas/pipeline.schema.json")


def test_defaults_make_a_minimal_spec_complete() -> None:
    p = Pipeline.model_validate({"name": "docs", "source": {"table": "docs", "columns": "body"}})
    assert (p.source.schema_name, p.source.table_name, p.source.key) == ("public", "docs", ["id"])
    assert (p.embedding.provider, p.model, p.dimensions) == ("local", "all-MiniLM-L6-v2", 384)
    assert p.embedding_column == "body_embedding"
    assert p.queue.kind == "memory" and p.queue.dedup_window_ms == 100
    assert p.database.dsn == "${DATABASE_URL}"
    assert p.target.index != "none" and p.target.index.metric == "cosine"


def test_provider_defaults_fill_model_dimensions_and_url() -> None:
    p = Pipeline.model_validate({"name": "p", "source": {"table": "t", "columns": ["a"]},
                                 "embedding": {"provider": "openai"}})
    assert (p.model, p.dimensions) == ("text-embedding-3-small", 1536)
    assert p.embedding.base_url == "https://api.openai.com/v1"
    assert p.embedding.api_key == "${OPENAI_API_KEY}"


def test_specs_are_immutable() -> None:
    p = Pipeline.model_validate({"name": "p", "source": {"table": "t", "columns": ["a"]}})
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        p.name = "other"  # type: ignore[misc]


def test_a_file_may_hold_several_documents(tmp_path: Path) -> None:
    spec = tmp_path / "two.yaml"
    spec.write_text("name: a\nsource: {table: t, columns: [x]}\n---\n"
                    "name: b\nsource: {table: t, columns: [y]}\n")
    result = load_paths([spec], environ={})
    assert [p.pipeline.name for p in result.pipelines] == ["a", "b"]


def test_unset_env_vars_are_warnings_that_name_the_variable(tmp_path: Path) -> None:
    spec = tmp_path / "p.yaml"
    spec.write_text("name: p\ndatabase: {dsn: '${NOPE_URL}'}\nsource: {table: t, columns: [x]}\n")
    result = load_paths([spec], environ={})
    assert result.errors == []
    [warning] = result.diagnostics
    assert (warning.level, warning.line, warning.rule) == ("warning", 2, "env-unset")
    assert "NOPE_URL" in warning.message
    assert load_paths([spec], environ={"NOPE_URL": "postgresql://x"}).diagnostics == []


def test_huge_files_are_refused_without_parsing(tmp_path: Path) -> None:
    spec = tmp_path / "huge.yaml"
    spec.write_text("# " + "x" * (1024 * 1024 + 10))
    [error] = load_paths([spec], environ={}).errors
    assert error.rule == "file-too-large"


FILTER_VALUES = [None, "open", "", "it's", "ünï", 0, -1, 2**63 - 1, -(2**63), 2**63, 1.5, -0.0,
                 1e308, float("nan"), float("inf"), float("-inf"), True, False, [], ["a"],
                 ["a", 1, 2.5, True], [float("nan")], [2**64], ["a\x00"], "a\x00", [[1]],
                 {"a": 1}]
FILTER_OPS = ["=", "!=", "<", "<=", ">", ">=", "in", "not in", "is null", "is not null"]


@pytest.mark.parametrize("op", FILTER_OPS)
@pytest.mark.parametrize("value", FILTER_VALUES, ids=repr)
def test_every_filter_the_spec_accepts_compiles(op: str, value: object) -> None:
    """Operator x value: either a clear validation error, or SQL that compiles (never a
    crash later in `plan`/`apply`, as `.nan` did)."""
    from v10r.compile.filter import filter_sql

    condition = {"column": "c", "op": op} | ({} if value is None else {"value": value})
    data = {"name": "p", "source": {"table": "t", "columns": ["a"], "filter": [condition]}}
    try:
        pipeline = Pipeline.model_validate(data)
    except pydantic.ValidationError as exc:
        assert all(e["loc"][:3] == ("source", "filter", 0) for e in exc.errors()), exc
        return
    sql = filter_sql(pipeline.source.filter, "NEW")
    assert 'NEW."c"' in sql and "nan" not in sql.lower() and "inf" not in sql.lower()
