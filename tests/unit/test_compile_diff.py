"""The planner without a database: hand-built live states in, typed operations out."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from v10r.compile import ddl
from v10r.compile.names import ROLES, marker
from v10r.errors import PlanError
from v10r.reconcile import ops
from v10r.reconcile.columns import Fill
from v10r.reconcile.diff import DiffOptions, diff
from v10r.reconcile.introspect import (
    LiveColumn,
    LiveIndex,
    LiveState,
    LiveTable,
    LiveTrigger,
    Recorded,
)
from v10r.spec.model import Pipeline

pytestmark = pytest.mark.unit


def pipeline(**spec: Any) -> Pipeline:
    spec.setdefault("name", "docs")
    spec.setdefault("source", {"table": "docs", "key": "id", "columns": "body"})
    return Pipeline.model_validate(spec)


def bare_table() -> LiveTable:
    return LiveTable("public", "docs", "r", True, columns={
        "id": LiveColumn("id", "bigint", "int8"), "body": LiveColumn("body", "text", "text"),
        "other": LiveColumn("other", "text", "text")},
        indexes={"docs_pkey": LiveIndex("docs_pkey", ("id",), True, True, False, "btree",
                                        ("int8_ops",), ())})


def empty_state(table: LiveTable | None = None) -> LiveState:
    table = table or bare_table()
    return LiveState(180006, "0.8.1", "app", True, False, False, None,
                     tables={("public", "docs"): table})


def applied(*pipelines: Pipeline, marked: bool = True) -> LiveState:
    """The state a successful apply of `pipelines` leaves behind (`marked=False`: as an
    older v10r left it, without ownership markers)."""
    table = bare_table()
    recorded = {}
    compiled = [ddl.compile_pipeline(p) for p in pipelines]
    triggers = ddl.table_triggers(compiled)
    for c in compiled:
        for col, role in zip(c.columns, ROLES, strict=True):
            table.columns[col.name] = LiveColumn(
                col.name, col.type, col.type.split("(")[0],
                comment=marker(c.name, role) if marked else None)
        if c.index:
            i = c.index
            table.indexes[i.name] = LiveIndex(i.name, (i.column,), False, True, False, "hnsw",
                                              (i.opclass,), tuple(f"{k}={v}" for k, v in i.options),
                                              comment=marker(c.name, "index") if marked else None)
        recorded[c.name] = Recorded(
            c.name, "default", "public", "docs", c.names.embedding,
            tuple(col.name for col in c.columns), c.index.name if c.index else None,
            tuple(t.name for t in triggers), c.definition_hash, c.fingerprint,
            c.pipeline.dimensions, c.pipeline.model)
    for t in triggers:
        table.triggers[t.name] = LiveTrigger(t.name, "v10r.v10r_notify", ("…", t.marker))
    relations = frozenset(("public", n) for n in ["docs", *table.indexes])
    return replace(empty_state(table), schema_exists=True, bookkeeping_exists=True,
                   function_source=ddl.NOTIFY_BODY, recorded=recorded, relations=relations)


def kinds(plan) -> list[str]:
    return [ops.op_kind(op) for op in plan.operations]


def test_a_new_pipeline_creates_everything_in_order() -> None:
    plan = diff([pipeline()], empty_state())
    assert kinds(plan) == ["CreateSchema", "CreateFunction", *["AddColumn"] * 5, "CreateIndex",
                           "CreateTrigger", "CreateTrigger", "RecordPipeline"]
    assert plan.pipelines[0].action == "create"
    index = next(op for op in plan.operations if isinstance(op, ops.CreateIndex))
    assert not index.transactional and not index.destructive


def test_an_applied_pipeline_needs_nothing() -> None:
    plan = diff([pipeline()], applied(pipeline()))
    assert plan.operations == () and plan.pipelines[0].action == "unchanged"


def test_pgvector_missing_is_an_error() -> None:
    with pytest.raises(PlanError, match="pgvector"):
        diff([pipeline()], replace(empty_state(), pgvector_version=None))


def test_no_right_to_create_the_schema_is_an_error() -> None:
    with pytest.raises(PlanError, match="may not create schema v10r"):
        diff([pipeline()], replace(empty_state(), can_create_schema=False))


def test_halfvec_needs_pgvector_0_7() -> None:
    with pytest.raises(PlanError, match="halfvec needs pgvector 0.7"):
        diff([pipeline(target={"type": "halfvec"})],
             replace(empty_state(), pgvector_version="0.6.2"))


def test_a_preprocessing_change_in_place_only_records_and_says_rows_are_re_embedded() -> None:
    changed = pipeline(preprocess={"max_chars": 100}, target={"reembed": "in_place"})
    plan = diff([changed], applied(pipeline()))
    assert kinds(plan) == ["RecordPipeline"]
    assert plan.pipelines[0].action == "alter"
    assert any("re-embedded" in n for n in plan.pipelines[0].notes)


def test_a_preprocessing_change_starts_a_blue_green_re_embedding() -> None:
    plan = diff([pipeline(preprocess={"max_chars": 100})], applied(pipeline()))
    assert kinds(plan) == [*["AddColumn"] * 5, "RecordPipeline"]
    assert plan.operations[0].column == "body_embedding_v10r_next"
    assert not any(op.destructive for op in plan.operations)
    record = plan.operations[-1].row
    assert record.next_column == "body_embedding_v10r_next"
    assert record.fingerprint == applied(pipeline()).recorded["docs"].fingerprint  # serving
    assert plan.filling["docs"].names.hash == "body_embedding_v10r_next_hash"
    assert plan.filling["docs"].from_scratch and len(plan.pipelines[0].phases) == 3


def migrating(changed: Pipeline) -> LiveState:
    """`applied(pipeline())` after the apply that started re-embedding for `changed`."""
    state = applied(pipeline())
    plan = diff([changed], state)
    table = state.tables[("public", "docs")]
    for op in plan.operations:
        if isinstance(op, ops.AddColumn):
            table.columns[op.column] = LiveColumn(op.column, op.type, op.type.split("(")[0],
                                                  comment=op.marker)
    return replace(state, recorded={"docs": plan.operations[-1].row})


def test_an_unfinished_re_embedding_waits_and_a_finished_one_builds_its_index_first() -> None:
    changed = pipeline(preprocess={"max_chars": 100})
    state = migrating(changed)
    assert diff([changed], state, DiffOptions(fills={"docs": Fill(3, 10)})).operations == ()
    plan = diff([changed], state, DiffOptions(fills={"docs": Fill(0, 10)}))
    assert kinds(plan) == ["CreateIndex"]
    assert plan.operations[0].index.column == "body_embedding_v10r_next"


def test_cutover_renames_in_one_step_and_marks_the_old_vectors_retired() -> None:
    changed = pipeline(preprocess={"max_chars": 100})
    state = migrating(changed)
    table = state.tables[("public", "docs")]
    index = ddl.compile_pipeline(changed, "body_embedding_v10r_next").index
    table.indexes[index.name] = LiveIndex(index.name, (index.column,), False, True, False,
                                          "hnsw", (index.opclass,), ("m=16", "ef_construction=64"),
                                          comment=marker("docs", "index"))
    plan = diff([changed], state, DiffOptions(fills={"docs": Fill(0, 10)}))
    assert kinds(plan) == ["RenameColumns", "RecordPipeline"]
    cut = plan.operations[0]
    assert cut.renames[0] == ("body_embedding", "body_embedding_v10r_old")
    assert ("body_embedding_v10r_next", "body_embedding") in cut.renames
    assert ("body_embedding_v10r_old", "v10r:docs:retired") in cut.marks
    assert not cut.destructive
    row = plan.operations[-1].row
    assert (row.next_column, row.retired) == (None, ("body_embedding_v10r_old",))
    assert row.fingerprint == ddl.compile_pipeline(changed).fingerprint


def test_new_index_parameters_rebuild_the_index() -> None:
    plan = diff([pipeline(target={"index": {"m": 32}})], applied(pipeline()))
    assert kinds(plan) == ["DropIndex", "CreateIndex", "RecordPipeline"]
    assert "definition changed" in plan.operations[0].describe()


def test_index_none_drops_v10rs_index() -> None:
    plan = diff([pipeline(target={"index": "none"})], applied(pipeline()))
    assert kinds(plan) == ["DropIndex", "RecordPipeline"]


def test_new_dimensions_in_place_replace_the_vector_and_reset_the_hash() -> None:
    bigger = pipeline(embedding={"provider": "custom", "base_url": "http://x", "model": "m",
                                 "dimensions": 768}, target={"reembed": "in_place"})
    plan = diff([bigger], applied(pipeline()))
    assert kinds(plan) == ["ReplaceColumn", "ReplaceColumn", "CreateIndex", "RecordPipeline"]
    assert plan.operations[0].destructive
    assert plan.operations[0].sql[1].endswith('ADD COLUMN "body_embedding" vector(768)')
    assert plan.operations[1].column == "body_embedding_hash"
    assert plan.filling["docs"].from_scratch


@pytest.mark.parametrize("target", [{"type": "halfvec"}, {"type": "halfvec", "reembed": "in_place"}])
def test_a_type_change_alone_is_a_re_embedding_too(target) -> None:
    plan = diff([pipeline(target=target)], applied(pipeline()))
    assert plan.filling["docs"].from_scratch  # every row counts as pending


def test_an_older_install_is_adopted_where_bookkeeping_and_catalog_agree() -> None:
    plan = diff([pipeline()], applied(pipeline(), marked=False))
    assert kinds(plan) == [*["MarkColumn"] * 5, "MarkIndex"]
    assert plan.operations[0].sql[0].endswith("IS 'v10r:docs:embedding'")


def test_a_recorded_column_of_the_wrong_type_is_never_adopted() -> None:
    state = applied(pipeline(), marked=False)
    table = state.tables[("public", "docs")]
    table.columns["body_embedding_hash"] = LiveColumn("body_embedding_hash", "integer", "int4")
    with pytest.raises(PlanError, match="body_embedding_hash is not marked"):
        diff([pipeline()], state)


def test_an_outdated_function_or_trigger_is_replaced() -> None:
    state = applied(pipeline())
    table = state.tables[("public", "docs")]
    table.triggers["docs_notify_v10r"] = LiveTrigger("docs_notify_v10r", "v10r.v10r_notify",
                                                     ("old-marker",))
    plan = diff([pipeline()], replace(state, function_source="-- older"))
    assert kinds(plan) == ["CreateFunction", "CreateTrigger"]
    assert all(op.replace for op in plan.operations)


def test_a_users_column_collides_unless_rename_is_allowed() -> None:
    table = bare_table()
    table.columns["body_embedding_at"] = LiveColumn("body_embedding_at", "date", "date")
    with pytest.raises(PlanError, match="column public.docs.body_embedding_at already exists"):
        diff([pipeline()], empty_state(table))
    plan = diff([pipeline(target={"on_collision": "rename"})], empty_state(table))
    added = [op.column for op in plan.operations if isinstance(op, ops.AddColumn)]
    assert added[0] == "body_embedding_v10r"
    assert plan.pipelines[0].renamed_from == "body_embedding"
    assert "renamed from body_embedding" in plan.operations[2].describe()


def test_an_index_name_taken_elsewhere_in_the_schema_collides() -> None:
    state = replace(empty_state(), relations=frozenset({("public", "docs_body_embedding_hnsw")}))
    with pytest.raises(PlanError, match="index public.docs_body_embedding_hnsw"):
        diff([pipeline()], state)


def test_pipelines_of_one_table_must_share_the_key() -> None:
    other = pipeline(name="b", source={"table": "docs", "key": "other", "columns": "body"},
                     target={"column": "e2"})
    with pytest.raises(PlanError, match="different keys"):
        diff([pipeline(), other], empty_state())


def test_a_removed_pipeline_is_only_reported_without_prune() -> None:
    plan = diff([], applied(pipeline()), database="default")
    assert plan.operations == ()
    assert plan.pipelines[0].action == "removed"


def test_prune_drops_triggers_index_and_bookkeeping_but_keeps_columns() -> None:
    plan = diff([], applied(pipeline()), DiffOptions(prune=True), database="default")
    assert kinds(plan) == ["DropIndex", "DropTrigger", "DropTrigger", "ForgetPipeline"]
    assert "columns kept: body_embedding" in plan.operations[-1].describe()
    assert all(op.destructive for op in plan.operations)  # each is confirmed by apply


def test_drop_columns_drops_v10rs_columns_destructively() -> None:
    plan = diff([], applied(pipeline()), DiffOptions(prune=True, drop_columns=True),
                database="default")
    drops = [op for op in plan.operations if isinstance(op, ops.DropColumn)]
    assert next(op.column for op in drops) == "body_embedding" and len(drops) == 5
    assert all(op.destructive for op in drops)


@pytest.mark.parametrize("threshold, names", [
    (None, {"docs_notify_v10r"}), (500, {"docs_notify_v10r", "docs_bulk_notify_v10r"})])
def test_trigger_mode_follows_bulk_threshold(threshold, names) -> None:
    triggers = ddl.table_triggers([ddl.compile_pipeline(
        pipeline(trigger={"bulk_threshold": threshold}))])
    assert {t.name for t in triggers} == names
    assert all("FOR EACH ROW" in t.sql for t in triggers) == (threshold is None)


def test_row_trigger_watches_text_and_filter_columns_only() -> None:
    p = pipeline(source={"table": "docs", "key": "id", "columns": ["title", "body"],
                         "filter": [{"column": "status", "op": "=", "value": "live"}]},
                 trigger={"bulk_threshold": None})
    [trigger] = ddl.table_triggers([ddl.compile_pipeline(p)])
    assert ('AFTER INSERT OR UPDATE OF "title", "body", "status" ON "public"."docs" '
            'FOR EACH ROW') in trigger.sql
    assert "embedding" not in trigger.sql.split("EXECUTE")[0]


def test_identifiers_are_quoted_everywhere() -> None:
    p = pipeline(source={"table": '"My Schema"."My ""Docs"""', "key": "Doc ID",
                         "columns": 'Body "x"'})
    c = ddl.compile_pipeline(p)
    assert c.names.qualified_table == '"My Schema"."My ""Docs"""'
    sql = " ".join(t.sql for t in ddl.table_triggers([c]))
    assert 'ON "My Schema"."My ""Docs"""' in sql
    assert 'to_jsonb(n."Doc ID")' in sql
    assert 'n."Body ""x"""' in sql



def test_a_new_target_column_renames_the_old_one_keeping_its_vectors() -> None:
    plan = diff([pipeline(target={"column": "vec"})], applied(pipeline()))
    assert kinds(plan) == ["RenameColumns", "RecordPipeline"]
    rename = plan.operations[0]
    assert rename.renames[0] == ("body_embedding", "vec")
    assert rename.index_renames == (("docs_body_embedding_hnsw", "docs_vec_hnsw"),)
    assert not rename.destructive


def test_a_pipeline_moved_to_another_table_leaves_the_old_one() -> None:
    state = applied(pipeline())
    other = LiveTable("public", "notes", "r", True, columns={
        "id": LiveColumn("id", "bigint", "int8"), "body": LiveColumn("body", "text", "text")},
        indexes={"notes_pkey": LiveIndex("notes_pkey", ("id",), True, True, False, "btree",
                                         ("int8_ops",), ())})
    state = replace(state, tables={**state.tables, ("public", "notes"): other})
    plan = diff([pipeline(source={"table": "notes", "columns": "body"})], state)
    dropped = [op.describe() for op in plan.operations
               if isinstance(op, (ops.DropIndex, ops.DropTrigger))]
    assert len(dropped) == 3 and all("docs" in d for d in dropped)
    assert not any(isinstance(op, ops.ForgetPipeline) for op in plan.operations)


def test_a_failed_build_of_the_new_columns_index_is_rebuilt_without_asking() -> None:
    changed = pipeline(preprocess={"max_chars": 100})
    state = migrating(changed)
    index = ddl.compile_pipeline(changed, "body_embedding_v10r_next").index
    state.tables[("public", "docs")].indexes[index.name] = LiveIndex(
        index.name, (index.column,), False, False, False, "hnsw", (index.opclass,),
        ("m=16", "ef_construction=64"))  # invalid, unmarked: an apply killed mid-build
    plan = diff([changed], state, DiffOptions(fills={"docs": Fill(0, 10)}))
    assert kinds(plan) == ["DropIndex", "CreateIndex"]
    assert not any(op.destructive for op in plan.operations)


def test_a_second_change_mid_way_restarts_the_fill_without_dropping_anything() -> None:
    state = migrating(pipeline(preprocess={"max_chars": 100}))
    again = pipeline(preprocess={"max_chars": 50})
    plan = diff([again], state, DiffOptions(fills={"docs": Fill(0, 10)}))  # counts: stale
    assert kinds(plan) == ["RecordPipeline"]
    assert plan.operations[0].row.next_fingerprint == ddl.compile_pipeline(again).fingerprint
    bigger = pipeline(preprocess={"max_chars": 100}, embedding={
        "provider": "custom", "base_url": "http://x", "model": "m", "dimensions": 768})
    plan = diff([bigger], state)
    assert kinds(plan) == ["ReplaceColumn", "ReplaceColumn", "RecordPipeline"]
    assert [op.column for op in plan.operations[:2]] == ["body_embedding_v10r_next",
                                                         "body_embedding_v10r_next_hash"]


def test_going_back_mid_way_drops_the_unfinished_column_with_confirmation() -> None:
    plan = diff([pipeline()], migrating(pipeline(preprocess={"max_chars": 100})))
    drops = [op for op in plan.operations if isinstance(op, ops.DropColumn)]
    assert drops[0].column == "body_embedding_v10r_next" and len(drops) == 5
    assert all(op.destructive for op in drops)
    assert plan.operations[-1].row.next_column is None


def test_a_rename_never_touches_a_column_the_catalog_does_not_say_is_ours() -> None:
    state = applied(pipeline())
    table = state.tables[("public", "docs")]
    table.columns["other"] = LiveColumn("other", "text", "text", comment="the user's own")
    rec = state.recorded["docs"]  # as if another role had edited the bookkeeping row
    state = replace(state, recorded={"docs": replace(rec, embedding_column="other",
                                                     columns=(*rec.columns, "other"))})
    with pytest.raises(PlanError, match="other is not marked as v10r's"):
        diff([pipeline()], state)
