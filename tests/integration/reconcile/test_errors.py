"""Specs that cannot be applied: a clear PlanError naming what and how to fix it, and
nothing changed in the database."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from tests.integration.reconcile.conftest import make_pipeline
from v10r.errors import ConnectionFailed, PlanError
from v10r.reconcile import apply_pipelines, plan_pipelines

pytestmark = pytest.mark.integration


async def assert_untouched(conn: asyncpg.Connection) -> None:
    assert await conn.fetchval("SELECT to_regnamespace('v10r')") is None


async def test_pgvector_missing_on_postgres_15(pg15_dsn: str) -> None:
    conn = await asyncpg.connect(pg15_dsn)
    try:
        await conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
        with pytest.raises(PlanError, match="pgvector is not installed") as raised:
            await apply_pipelines([make_pipeline(pg15_dsn)])
        assert "hint:" in str(raised.value) and "'docs'" in str(raised.value)
        await assert_untouched(conn)
    finally:
        await conn.close()


@pytest.mark.parametrize(("ddl", "source", "expected"), [
    ("CREATE TABLE other (id int PRIMARY KEY)", {}, "table public.docs does not exist"),
    ("CREATE TABLE docs (id int PRIMARY KEY, text1 text)", {},
     "text column 'body' does not exist in public.docs"),
    ("CREATE TABLE docs (id int PRIMARY KEY, body jsonb)", {},
     "text column 'body' of public.docs has type jsonb, not text"),
    ("CREATE TABLE docs (id int, body text)", {}, "key (id) of public.docs is not a primary key"),
    ("CREATE TABLE docs (id int PRIMARY KEY, body text)", {"key": "uid"},
     "key column 'uid' does not exist"),
    ("CREATE TABLE docs (id int PRIMARY KEY, body text)",
     {"filter": [{"column": "state", "op": "is null"}]}, "filter column 'state' does not exist"),
    ("CREATE VIEW docs AS SELECT 1 AS id, 'x'::text AS body", {},
     "table public.docs is not a table"),
])
async def test_problems_with_the_users_table(pg_dsn, conn, ddl, source, expected) -> None:
    await conn.execute(ddl)
    pipeline = make_pipeline(pg_dsn, source={"table": "docs", "key": "id", "columns": "body",
                                             **source})
    with pytest.raises(PlanError) as raised:
        await plan_pipelines([pipeline])
    assert expected in str(raised.value) and "hint:" in str(raised.value)
    with pytest.raises(PlanError):
        await apply_pipelines([pipeline])
    await assert_untouched(conn)


async def test_too_many_dimensions_for_an_hnsw_index(pg_dsn, conn) -> None:
    await conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    pipeline = make_pipeline(pg_dsn, embedding={
        "provider": "custom", "base_url": "http://127.0.0.1:1", "model": "m",
        "dimensions": 3072})
    with pytest.raises(PlanError, match="at most 2000 dimensions"):
        await apply_pipelines([pipeline])
    await assert_untouched(conn)


async def test_a_user_who_does_not_own_the_table(pg_dsn, conn) -> None:
    role = f"r_{uuid.uuid4().hex[:10]}"
    await conn.execute(f"CREATE TABLE docs (id int PRIMARY KEY, body text); "
                       f"CREATE ROLE {role} LOGIN; GRANT CREATE ON DATABASE "
                       f"{pg_dsn.rsplit('/', 1)[1]} TO {role}")
    try:
        user_dsn = pg_dsn.replace("postgres@", f"{role}@", 1)
        with pytest.raises(PlanError, match="does not own table public.docs"):
            await apply_pipelines([make_pipeline(user_dsn)])
        await assert_untouched(conn)
    finally:
        await conn.execute(f"REVOKE ALL ON DATABASE {pg_dsn.rsplit('/', 1)[1]} FROM {role}; "
                           f"DROP ROLE {role}")


async def test_unreachable_database_masks_the_password() -> None:
    pipeline = make_pipeline("postgresql://app:hunter2-secret@127.0.0.1:1/app")
    with pytest.raises(ConnectionFailed) as raised:
        await plan_pipelines([pipeline])
    assert "hunter2-secret" not in str(raised.value) and "****" in str(raised.value)
