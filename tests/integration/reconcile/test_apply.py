"""`apply_pipelines` against real PostgreSQL + pgvector: objects, idempotence, locking."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.integration.reconcile.conftest import make_pipeline
from v10r.reconcile import applied_state, apply_pipelines, plan_pipelines

pytestmark = pytest.mark.integration

DOCS = "CREATE TABLE docs (id bigint PRIMARY KEY, body text, other text)"


async def columns(conn: asyncpg.Connection, table: str) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT attname, format_type(atttypid, atttypmod) AS t FROM pg_attribute "
        "WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped", table)
    return {r["attname"]: r["t"] for r in rows}


async def test_apply_creates_columns_index_trigger_and_bookkeeping(pg_dsn, conn) -> None:
    await conn.execute(DOCS)
    pipeline = make_pipeline(pg_dsn)

    result = await apply_pipelines([pipeline])

    assert result.changed
    cols = await columns(conn, "docs")
    assert cols["body_embedding"] == "vector(384)"
    assert cols["body_embedding_hash"] == "text"
    assert cols["body_embedding_at"] == "timestamp with time zone"
    assert await conn.fetchval(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'docs_body_embedding_hnsw'::regclass")
    triggers = {r["tgname"] for r in await conn.fetch(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = 'docs'::regclass")}
    assert triggers == {"docs_notify_v10r", "docs_bulk_notify_v10r"}
    row = await conn.fetchrow("SELECT * FROM v10r.pipelines WHERE name = 'docs'")
    assert row["embedding_column"] == "body_embedding" and row["dimensions"] == 384


async def test_plan_after_apply_shows_no_changes_and_reapply_is_a_no_op(pg_dsn, conn) -> None:
    await conn.execute(DOCS)
    pipeline = make_pipeline(pg_dsn)
    before = await plan_pipelines([pipeline])
    assert before.has_changes and before.pipelines[0].action == "create"

    await apply_pipelines([pipeline])

    after = await plan_pipelines([pipeline])
    assert not after.has_changes
    assert after.pipelines[0].action == "unchanged"
    assert not (await apply_pipelines([pipeline])).changed


async def test_two_concurrent_applies_do_the_work_once(pg_dsn, conn) -> None:
    await conn.execute(DOCS)
    pipeline = make_pipeline(pg_dsn)

    first, second = await asyncio.gather(apply_pipelines([pipeline]),
                                         apply_pipelines([pipeline]))

    assert sorted([first.changed, second.changed]) == [False, True]
    assert not (await plan_pipelines([pipeline])).has_changes


async def test_applied_state_reports_names_and_drift(pg_dsn, conn) -> None:
    await conn.execute(DOCS)
    pipeline = make_pipeline(pg_dsn)
    state = await applied_state(conn, [pipeline])
    assert not state["docs"].applied and not state["docs"].up_to_date

    await apply_pipelines([pipeline])

    state = await applied_state(conn, [pipeline])
    assert state["docs"].up_to_date, state["docs"].problems
    assert state["docs"].names.embedding == "body_embedding"
    changed = make_pipeline(pg_dsn, preprocess={"max_chars": 10})
    drifted = (await applied_state(conn, [changed]))["docs"]
    assert drifted.applied and not drifted.up_to_date


async def test_an_install_from_before_backfill_bookmarks_gets_their_table(pg_dsn, conn) -> None:
    """A `v10r` schema made by an earlier release lacks `v10r.backfill`: the next apply
    adds it (and only it), so `v10r backfill` can resume there too."""
    await conn.execute(DOCS)
    pipeline = make_pipeline(pg_dsn)
    await apply_pipelines([pipeline])
    await conn.execute("DROP TABLE v10r.backfill")
    plan = await plan_pipelines([pipeline])
    assert [op.describe() for op in plan.databases[0].operations] == [
        "create schema v10r and its bookkeeping table"]
    await apply_pipelines([pipeline])
    assert await conn.fetchval("SELECT to_regclass('v10r.backfill')") is not None
    assert not (await plan_pipelines([pipeline])).has_changes
