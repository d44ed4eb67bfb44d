"""How apply handles what is already there: collisions, spec changes, removed pipelines."""

from __future__ import annotations

import asyncpg
import pytest

from tests.integration.reconcile.conftest import make_pipeline
from v10r.errors import PlanError
from v10r.reconcile import applied_state, apply_pipelines, plan_pipelines
from v10r.reconcile.ops import DropColumn, ReplaceColumn

pytestmark = pytest.mark.integration

DOCS = "CREATE TABLE docs (id bigint PRIMARY KEY, body text, title text)"


async def attnames(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT attname FROM pg_attribute WHERE attrelid = 'docs'::regclass "
                            "AND attnum > 0 AND NOT attisdropped")
    return {r["attname"] for r in rows}


async def test_a_users_column_under_the_wanted_name_fails_by_default(pg_dsn, conn) -> None:
    await conn.execute(DOCS + "; ALTER TABLE docs ADD COLUMN body_embedding_hash int")
    with pytest.raises(PlanError) as raised:
        await apply_pipelines([make_pipeline(pg_dsn)])
    message = str(raised.value)
    assert "public.docs.body_embedding_hash" in message and "'docs'" in message
    assert "on_collision: rename" in message
    assert "body_embedding" not in await attnames(conn)  # nothing changed


async def test_rename_on_collision_uses_a_deterministic_name_and_keeps_it(pg_dsn, conn) -> None:
    await conn.execute(DOCS + "; ALTER TABLE docs ADD COLUMN body_embedding text")
    pipeline = make_pipeline(pg_dsn, target={"on_collision": "rename"})

    plan = await plan_pipelines([pipeline])
    assert plan.pipelines[0].renamed_from == "body_embedding"
    assert plan.pipelines[0].embedding_column == "body_embedding_v10r"
    await apply_pipelines([pipeline])

    assert {"body_embedding_v10r", "body_embedding_v10r_hash"} <= await attnames(conn)
    assert await conn.fetchval("SELECT body_embedding FROM docs") is None  # user's, untouched
    assert not (await plan_pipelines([pipeline])).has_changes
    state = (await applied_state(conn, [pipeline]))["docs"]
    assert state.up_to_date and state.names.embedding == "body_embedding_v10r"


async def test_a_users_trigger_under_the_wanted_name_is_never_replaced(pg_dsn, conn) -> None:
    await conn.execute(DOCS + """;
        CREATE FUNCTION mine() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END';
        CREATE TRIGGER docs_notify_v10r AFTER INSERT ON docs EXECUTE FUNCTION mine()""")
    with pytest.raises(PlanError, match="trigger docs_notify_v10r"):
        await apply_pipelines([make_pipeline(pg_dsn)])
    await apply_pipelines([make_pipeline(pg_dsn, target={"on_collision": "rename"})])
    names = {r[0] for r in await conn.fetch(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = 'docs'::regclass")}
    assert names == {"docs_notify_v10r", "docs_notify_v10r_v10r", "docs_bulk_notify_v10r_v10r"}


async def test_dimension_change_replaces_the_vector_column_and_its_index(pg_dsn, conn) -> None:
    await conn.execute(DOCS)
    small = {"provider": "custom", "base_url": "http://127.0.0.1:1", "model": "m",
             "dimensions": 8}
    await apply_pipelines([make_pipeline(pg_dsn, embedding=small)])
    await conn.execute("INSERT INTO docs (id, body) VALUES (1, 'a')")
    await conn.execute("UPDATE docs SET body_embedding = array_fill(1, ARRAY[8])::vector, "
                       "body_embedding_hash = 'x'")
    bigger = make_pipeline(pg_dsn, embedding={**small, "dimensions": 16},
                           target={"reembed": "in_place"})

    plan = await plan_pipelines([bigger])
    replaced = [op.column for op in plan.operations if isinstance(op, ReplaceColumn)]
    assert replaced == ["body_embedding", "body_embedding_hash"]  # the hash is reset too
    assert plan.pipelines[0].rows_to_embed == 1
    assert any("re-embedded" in note for note in plan.pipelines[0].notes)
    with pytest.raises(PlanError, match="not confirmed"):
        await apply_pipelines([bigger])
    await apply_pipelines([bigger], approve=True)
    assert await conn.fetchval("SELECT body_embedding_hash FROM docs") is None

    assert await conn.fetchval("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                               "WHERE attrelid = 'docs'::regclass AND attname = 'body_embedding'"
                               ) == "vector(16)"
    assert await conn.fetchval("SELECT indisvalid FROM pg_index "
                               "WHERE indexrelid = 'docs_body_embedding_hnsw'::regclass")
    assert not (await plan_pipelines([bigger])).has_changes


async def test_an_invalid_index_is_detected_and_rebuilt(pg_dsn, conn) -> None:
    await conn.execute(DOCS)
    pipeline = make_pipeline(pg_dsn)
    await apply_pipelines([pipeline])
    await conn.execute("UPDATE pg_index SET indisvalid = false "
                       "WHERE indexrelid = 'docs_body_embedding_hnsw'::regclass")

    plan = await plan_pipelines([pipeline])
    assert next(op.describe() for op in plan.operations).endswith(
        "(invalid, left by a failed concurrent build)")
    await apply_pipelines([pipeline])
    assert await conn.fetchval("SELECT indisvalid FROM pg_index "
                               "WHERE indexrelid = 'docs_body_embedding_hnsw'::regclass")


async def test_two_pipelines_share_one_table_and_prune_removes_one(pg_dsn, conn) -> None:
    await conn.execute(DOCS)
    body = make_pipeline(pg_dsn)
    title = make_pipeline(pg_dsn, name="titles", source={
        "table": "docs", "key": "id", "columns": ["title"]}, target={"index": "none"})
    await apply_pipelines([body, title])
    assert {"body_embedding", "title_embedding"} <= await attnames(conn)

    without = await plan_pipelines([body])
    assert [p.action for p in without.pipelines] == ["alter", "removed"]  # trigger narrows
    await apply_pipelines([body], prune=True, approve=True)

    assert await conn.fetchval("SELECT count(*) FROM v10r.pipelines") == 1
    assert "title_embedding" in await attnames(conn)  # columns stay without --drop-columns
    assert not (await plan_pipelines([body], prune=True)).has_changes


async def test_prune_with_drop_columns_removes_everything_of_the_pipeline(pg_dsn, conn) -> None:
    await conn.execute(DOCS + "; CREATE TABLE other (id int PRIMARY KEY, t text)")
    await apply_pipelines([make_pipeline(pg_dsn)])
    keep = make_pipeline(pg_dsn, name="other", source={"table": "other", "columns": "t"})

    plan = await plan_pipelines([keep], prune=True, drop_columns=True)
    assert sum(isinstance(op, DropColumn) for op in plan.operations) == 5
    await apply_pipelines([keep], prune=True, drop_columns=True, approve=True)

    assert await attnames(conn) == {"id", "body", "title"}
    assert await conn.fetchval("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'docs'::regclass"
                               ) == 0
    assert await conn.fetchval("SELECT to_regclass('docs_body_embedding_hnsw')") is None


async def test_switching_to_per_row_mode_drops_the_bulk_trigger(pg_dsn, conn) -> None:
    await conn.execute(DOCS)
    await apply_pipelines([make_pipeline(pg_dsn)])
    await apply_pipelines([make_pipeline(pg_dsn, trigger={"bulk_threshold": None})],
                          approve=True)
    names = {r[0] for r in await conn.fetch(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = 'docs'::regclass")}
    assert names == {"docs_notify_v10r"}
