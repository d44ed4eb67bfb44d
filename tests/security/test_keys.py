"""A key that may be NULL is refused by `plan`; rows whose key is NULL anyway (the
column lost its NOT NULL after apply) are skipped by the catch-up scan, not fatal."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from tests.security.conftest import Cli, Roles, write_spec
from v10r.listen.catchup import catch_up
from v10r.listen.targets import Target
from v10r.queues.memory import MemoryQueue
from v10r.reconcile import apply_pipelines
from v10r.spec.model import Pipeline

pytestmark = [pytest.mark.e2e]

SPEC = """\
name: nk
database: {{dsn: "${{DATABASE_URL}}"}}
source: {{table: public.nk, key: {key}, columns: [body]}}
embedding: {{provider: local}}
target: {{index: none}}
"""


@pytest.mark.parametrize(("ddl", "key", "named"), [
    ("CREATE TABLE nk (id int UNIQUE, body text)", "id", "id"),
    ("CREATE TABLE nk (a int NOT NULL, b text, body text, UNIQUE (a, b))", "[a, b]", "b"),
    ("CREATE DOMAIN maybe AS int; CREATE TABLE nk (id maybe UNIQUE, body text)", "id", "id"),
], ids=["unique-nullable", "composite-one-nullable", "nullable-domain"])
async def test_plan_and_apply_refuse_a_nullable_key(roles: Roles, cli: Cli, tmp_path: Path,
                                                     ddl: str, key: str, named: str) -> None:
    await roles.admin(f"SET ROLE {roles.name('owner')}; {ddl}; "
                      "INSERT INTO nk (body) SELECT 'a NULL key' WHERE false")
    spec = write_spec(tmp_path, SPEC.format(key=key))
    for command in ("plan", "apply"):
        result = await cli(command, spec, role="owner")
        assert result.code == 1, result.output
        assert "Traceback" not in result.output
        assert f"key column(s) {named} of public.nk may be NULL" in result.output
        assert "SET NOT NULL" in result.output and "pipeline 'nk'" in result.output
    conn = await roles.connect("admin")
    try:
        assert await conn.fetchval("SELECT to_regnamespace('v10r')") is None
    finally:
        await conn.close()


async def test_a_not_null_unique_key_is_accepted(roles: Roles, cli: Cli, tmp_path: Path) -> None:
    await roles.admin(f"SET ROLE {roles.name('owner')}; "
                      "CREATE TABLE nk (id int NOT NULL UNIQUE, body text)")
    result = await cli("apply", write_spec(tmp_path, SPEC.format(key="id")), role="owner")
    assert result.code == 0, result.output


@pytest.mark.parametrize("page_size", [1, 1000])
async def test_catch_up_skips_rows_whose_key_became_null(pg_dsn: str, page_size: int) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("CREATE TABLE nk (id int NOT NULL UNIQUE, body text)")
        pipeline = Pipeline.model_validate({
            "name": "nk", "database": {"dsn": pg_dsn},
            "source": {"table": "public.nk", "key": "id", "columns": ["body"]},
            "embedding": {"provider": "custom", "base_url": "http://127.0.0.1:9/v1",
                          "model": "m", "dimensions": 3}, "target": {"index": "none"}})
        await apply_pipelines([pipeline])
        await conn.execute("ALTER TABLE nk ALTER COLUMN id DROP NOT NULL; "
                           "INSERT INTO nk VALUES (NULL, 'lost'), (1, 'a'), (2, 'b')")
    finally:
        await conn.close()
    queue = MemoryQueue()
    result = await catch_up([Target.of(pipeline)], queue, page_size=page_size,
                            interactive=False)
    assert result.enqueued == {"nk": 2}
