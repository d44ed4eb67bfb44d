"""Pipelines on one table never write a column another one writes or reads (or that they
read themselves): such specs validated, applied, and then corrupted each other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from v10r.compile.names import pipeline_names
from v10r.reconcile.diff import RENAME_SUFFIX
from v10r.spec.columns import RENAME_SUFFIX as SPEC_RENAME_SUFFIX
from v10r.spec.columns import written_columns
from v10r.spec.identifiers import derive_name
from v10r.spec.load import LoadResult, load_paths
from v10r.spec.model import Pipeline

pytestmark = pytest.mark.unit

SPECS = Path(__file__).resolve().parent.parent / "specs"
LONG = "c" * 60


def pipeline(name: str, columns: list[str], target: dict[str, Any] | None = None,
             table: str = "docs", **source: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "source": {"table": table, "columns": columns, **source}}
    if target:
        spec["target"] = target
    return spec


def load_pair(tmp_path: Path, first: dict[str, Any], second: dict[str, Any]) -> LoadResult:
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(first))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(second))
    return load_paths([tmp_path], environ={})


@pytest.mark.parametrize("target", [None, {"column": LONG}, {"column": "v", "on_collision": "rename"}])
def test_written_columns_match_what_compile_creates(target: dict[str, Any] | None) -> None:
    p = Pipeline.model_validate(pipeline("p", ["body"], target))
    names = pipeline_names(p)
    written = [u.column for u in written_columns(p)]
    assert written[:5] == [names.embedding, *names.metadata_columns]
    assert SPEC_RENAME_SUFFIX == RENAME_SUFFIX
    if p.target.on_collision == "rename":
        renamed = pipeline_names(p, derive_name(p.embedding_column, RENAME_SUFFIX))
        assert written[5:] == [renamed.embedding, *renamed.metadata_columns]


CONFLICTS = {
    "target-is-other-hash": (pipeline("a", ["body"], {"column": "shared_vec"}),
                             pipeline("b", ["title"], {"column": "shared_vec_hash"})),
    "target-is-other-model": (pipeline("a", ["body"]),
                              pipeline("b", ["title"], {"column": "body_embedding_model"})),
    "target-is-other-at": (pipeline("a", ["body"]),
                           pipeline("b", ["title"], {"column": "body_embedding_at"})),
    "target-is-other-note": (pipeline("a", ["body"]),
                             pipeline("b", ["title"], {"column": "body_embedding_note"})),
    "same-target": (pipeline("a", ["body"]), pipeline("b", ["title"], {"column": "body_embedding"})),
    "target-is-other-renamed": (
        pipeline("a", ["body"], {"column": "v", "on_collision": "rename"}),
        pipeline("b", ["title"], {"column": "v_v10r"})),
    "target-is-other-source": (pipeline("a", ["body"]), pipeline("b", ["title"], {"column": "body"})),
    "target-is-other-key": (pipeline("a", ["body"], key="doc_id"),
                            pipeline("b", ["title"], {"column": "doc_id"})),
    "target-is-other-filter": (
        pipeline("a", ["body"], filter=[{"column": "state", "op": "=", "value": "x"}]),
        pipeline("b", ["title"], {"column": "state"})),
    "hash-is-other-source": (pipeline("a", ["body_embedding_hash"]), pipeline("b", ["body"])),
    "long-names-shortened-alike": (pipeline("a", ["body"], {"column": LONG}),
                                   pipeline("b", ["title"], {"column": derive_name(LONG, "_hash")})),
    "qualified-and-bare-table": (pipeline("a", ["body"], table="public.docs"),
                                 pipeline("b", ["title"], {"column": "body_embedding_hash"})),
}


@pytest.mark.parametrize(("first", "second"), CONFLICTS.values(), ids=CONFLICTS.keys())
def test_conflicting_pipelines_are_refused_at_both(first: dict, second: dict,
                                                   tmp_path: Path) -> None:
    result = load_pair(tmp_path, first, second)
    conflicts = [d for d in result.errors if d.rule == "duplicate-target"]
    assert {Path(d.file).name for d in conflicts} == {"a.yaml", "b.yaml"}, result.diagnostics
    assert all("`a`" in d.message and "`b`" in d.message for d in conflicts)
    assert all(d.hint for d in conflicts) and not result.pipelines


NO_CONFLICT = {
    "other-table": (pipeline("a", ["body"]),
                    pipeline("b", ["title"], {"column": "body_embedding_hash"}, table="t2")),
    "other-schema": (pipeline("a", ["body"], table="s1.docs"),
                     pipeline("b", ["title"], {"column": "body_embedding_hash"}, table="s2.docs")),
    "shared-source-and-key": (pipeline("a", ["body", "title"]),
                              pipeline("b", ["title"], {"column": "title_vec"})),
    "shared-filter-column": (
        pipeline("a", ["body"], filter=[{"column": "lang", "op": "=", "value": "en"}]),
        pipeline("b", ["title"], filter=[{"column": "lang", "op": "=", "value": "de"}])),
}


@pytest.mark.parametrize(("first", "second"), NO_CONFLICT.values(), ids=NO_CONFLICT.keys())
def test_pipelines_that_only_share_what_they_read_are_fine(first: dict, second: dict,
                                                           tmp_path: Path) -> None:
    result = load_pair(tmp_path, first, second)
    assert result.errors == [] and len(result.pipelines) == 2


def test_other_databases_do_not_conflict(tmp_path: Path) -> None:
    a = pipeline("a", ["body"]) | {"database": {"name": "one"}}
    b = pipeline("b", ["title"], {"column": "body_embedding_hash"}) | {"database": {"name": "two"}}
    assert load_pair(tmp_path, a, b).errors == []


def test_the_conflict_corpus_points_at_both_files() -> None:
    result = load_paths([SPECS / "conflicts"], environ={})
    rendered = sorted(d.render() for d in result.errors)
    assert len(rendered) == 2, rendered
    assert "a.yaml:3:18: error: pipelines `shared` and `shared_hash` both write column " \
        "`shared_vec_hash`" in rendered[0] and "b.yaml:4:18)" in rendered[0]
    assert "b.yaml:4:18: error:" in rendered[1] and "a.yaml:3:18)" in rendered[1]


def test_a_duplicate_name_is_not_mistaken_for_a_column_conflict(tmp_path: Path) -> None:
    result = load_pair(tmp_path, pipeline("a", ["body"]), pipeline("a", ["title"]))
    assert [d.rule for d in result.errors] == ["duplicate-pipeline"]
