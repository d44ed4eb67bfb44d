"""A role with CREATE on a schema in the worker's search_path cannot slip its own
function into the worker's statements (PostgreSQL's CVE-2018-1058 pattern)."""

from __future__ import annotations

import re

import pytest

from tests.fixtures.roles import login_role
from tests.integration.work.conftest import FakeProvider, create_table, make_pipeline, task_for
from v10r.compile.content_hash import source_hash_sql
from v10r.compile.names import pipeline_names
from v10r.keys import ColumnType
from v10r.work import sql
from v10r.work.core import BatchProcessor, Status

pytestmark = pytest.mark.integration

# Better matches than pg_catalog's polymorphic unnest(anyarray) and now() for the
# worker's calls: an unqualified call would run them with the worker's privileges.
HOSTILE = [
    ("CREATE FUNCTION public.unnest(text[]) RETURNS SETOF text LANGUAGE plpgsql AS "
     "$$BEGIN RAISE EXCEPTION 'hijacked: unnest(text[])'; END$$"),
    ("CREATE FUNCTION public.unnest(integer[]) RETURNS SETOF integer LANGUAGE plpgsql AS "
     "$$BEGIN RAISE EXCEPTION 'hijacked: unnest(integer[])'; END$$"),
]


async def test_the_worker_never_calls_a_function_planted_in_public(db, pool):
    async with login_role(db, "GRANT CREATE ON SCHEMA public TO {role}") as mallory:
        for statement in HOSTILE:
            await mallory.execute(statement)
        pipeline = make_pipeline()
        names = await create_table(db, pipeline)
        await db.execute("INSERT INTO docs (id, body) VALUES (1, 'a'), (2, 'b')")
        processor = BatchProcessor(pipeline, names, pool, pool, FakeProvider())
        outcome = await processor.process([task_for(pipeline, 1), task_for(pipeline, 2)])
        assert [o.status for o in outcome.outcomes] == [Status.WRITTEN, Status.WRITTEN]


def test_the_workers_own_calls_casts_and_operators_are_qualified():
    pipeline = make_pipeline(key=("a", "b"))
    keys = (ColumnType("a", "bigint", "pg_catalog", "int8", "int8"),
            ColumnType("b", "citext", "ext", "citext", "citext", "ext"))
    vector = ColumnType("body_embedding", "vector(8)", "public", "vector", "vector", "public")
    names = pipeline_names(pipeline)
    for statement in (sql.fetch_sql(pipeline, names, keys),
                      sql.write_sql(pipeline, names, keys, vector)):
        statement = statement.replace(source_hash_sql(names.columns, sql.ALIAS), "")
        assert not re.search(r"(?<![\w.])(unnest|now)\(", statement)
        assert not re.search(r"::(text|int|integer|bigint|vector)\b", statement)
        assert " = " not in statement.split(" FROM ", 1)[1]  # (SET's `=` is no operator)
        assert '"a" OPERATOR(pg_catalog.=) u.k0::pg_catalog.int8' in statement
        assert '"b" OPERATOR("ext".=) u.k1::"ext"."citext"' in statement  # the type's own
    assert '::"public"."vector"[]' in sql.write_sql(pipeline, names, keys, vector)
