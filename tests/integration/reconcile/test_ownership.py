"""Ownership markers against real PostgreSQL: what apply marks, how an install made by an
older v10r (no markers, a smaller bookkeeping table) is adopted, and what is refused."""

from __future__ import annotations

import pytest

from tests.integration.reconcile.conftest import make_pipeline
from v10r.errors import PlanError
from v10r.reconcile import applied_state, apply_pipelines, plan_pipelines
from v10r.reconcile.ops import MarkColumn, MarkIndex, UpgradeBookkeeping
from v10r.reconcile.specset import SpecSet

pytestmark = pytest.mark.integration

DOCS = "CREATE TABLE docs (id bigint PRIMARY KEY, body text, title text)"
COMMENTS = """
SELECT a.attname, col_description(a.attrelid, a.attnum) AS comment FROM pg_attribute a
WHERE a.attrelid = 'docs'::regclass AND a.attname LIKE 'body_embedding%' ORDER BY a.attnum
"""


async def make_legacy(conn) -> None:
    """What an older v10r left: no comments, bookkeeping without the newer columns."""
    for row in await conn.fetch(COMMENTS):
        await conn.execute(f'COMMENT ON COLUMN docs."{row["attname"]}" IS NULL')
    await conn.execute("COMMENT ON INDEX docs_body_embedding_hnsw IS NULL; ALTER TABLE "
                       "v10r.pipelines DROP COLUMN spec_source, DROP COLUMN next_column, "
                       "DROP COLUMN next_fingerprint, DROP COLUMN retired")


async def test_apply_marks_every_column_and_the_index(pg_dsn, conn) -> None:
    await conn.execute(DOCS)
    await apply_pipelines([make_pipeline(pg_dsn)])
    comments = {r["attname"]: r["comment"] for r in await conn.fetch(COMMENTS)}
    assert comments == {"body_embedding": "v10r:docs:embedding",
                        "body_embedding_model": "v10r:docs:model",
                        "body_embedding_hash": "v10r:docs:hash",
                        "body_embedding_at": "v10r:docs:at",
                        "body_embedding_note": "v10r:docs:note"}
    assert await conn.fetchval("SELECT obj_description('docs_body_embedding_hnsw'::regclass, "
                               "'pg_class')") == "v10r:docs:index"


async def test_an_older_install_is_adopted_without_anything_destructive(pg_dsn, conn) -> None:
    await conn.execute(DOCS)
    pipeline = make_pipeline(pg_dsn)
    await apply_pipelines([pipeline])
    await make_legacy(conn)
    assert not (await applied_state(conn, [pipeline]))["docs"].up_to_date  # unmarked

    plan = await plan_pipelines([pipeline])
    kinds = {type(op) for op in plan.operations}
    assert kinds == {UpgradeBookkeeping, MarkColumn, MarkIndex, type(plan.operations[-1])}
    assert not any(op.destructive for op in plan.operations)
    await apply_pipelines([pipeline])  # no approval needed
    assert not (await plan_pipelines([pipeline])).has_changes
    assert (await applied_state(conn, [pipeline]))["docs"].up_to_date
    # Now marked, it can be pruned with its columns.
    keep = make_pipeline(pg_dsn, name="titles", source={
        "table": "docs", "key": "id", "columns": ["title"]}, target={"index": "none"})
    await apply_pipelines([keep], prune=True, drop_columns=True, approve=True)
    assert await conn.fetch(COMMENTS) == []


async def test_unmarked_columns_of_a_removed_pipeline_are_never_dropped(pg_dsn, conn) -> None:
    await conn.execute(DOCS)
    await apply_pipelines([make_pipeline(pg_dsn)])
    await make_legacy(conn)
    keep = make_pipeline(pg_dsn, name="titles", source={
        "table": "docs", "key": "id", "columns": ["title"]}, target={"index": "none"})
    with pytest.raises(PlanError, match="refusing to drop") as raised:
        await apply_pipelines([keep], prune=True, drop_columns=True, approve=True)
    assert "hint:" in str(raised.value)
    assert len(await conn.fetch(COMMENTS)) == 5  # rolled back: nothing dropped


async def test_pipelines_applied_without_a_spec_file_are_never_pruned_by_a_spec_set(
        pg_dsn, conn, tmp_path) -> None:
    await conn.execute(DOCS)
    await apply_pipelines([make_pipeline(pg_dsn)])  # a program's apply: no spec file
    keep = make_pipeline(pg_dsn, name="titles", source={
        "table": "docs", "key": "id", "columns": ["title"]}, target={"index": "none"})
    spec_set = SpecSet.of([str(tmp_path)], {"titles": str(tmp_path / "titles.yaml")})
    plan = await plan_pipelines([keep], prune=True, spec_set=spec_set)
    other = next(p for p in plan.pipelines if p.name == "docs")
    assert other.action == "other" and "another spec set" in other.notes[0]
    await apply_pipelines([keep], prune=True, drop_columns=True, approve=True,
                          spec_set=spec_set)
    assert await conn.fetchval("SELECT count(*) FROM v10r.pipelines") == 2
    assert len(await conn.fetch(COMMENTS)) == 5
