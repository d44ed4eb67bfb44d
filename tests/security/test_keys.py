"""A key that may be NULL is refused by `plan`; rows whose key is NULL anyway (the
column lost its NOT NULL after apply) are skipped by the catch-up scan, not fatal."""

from __future__ import annotations

import asyncio
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


@pytest.mark.parametrize("threshold", ["null", "1000"], ids=["row-trigger", "bulk-trigger"])
async def test_a_key_too_long_for_a_notification_never_fails_the_users_write(
        roles: Roles, cli: Cli, tmp_path: Path, threshold: str) -> None:
    """NOTIFY refuses payloads of 8000 bytes or more; the trigger asks for a scan instead,
    so the user's INSERT and UPDATE of a row with a huge text key still succeed."""
    await roles.admin(f"SET ROLE {roles.name('owner')}; "
                      "CREATE TABLE nk (id text NOT NULL PRIMARY KEY, body text)")
    spec = write_spec(tmp_path, SPEC.format(key="id") + f"trigger: {{bulk_threshold: {threshold}}}\n")
    assert (await cli("apply", spec, role="owner")).code == 0
    listener, conn = await roles.connect("reader"), await roles.connect("owner")
    heard: list[str] = []
    try:
        await listener.add_listener("v10r_nk", lambda *args: heard.append(args[3]))
        for key in ("x" * 9000, "é" * 5000, "short"):
            await conn.execute("INSERT INTO nk VALUES ($1, 'text')", key)
            await conn.execute("UPDATE nk SET body = 'new text' WHERE id = $1", key)
        for _ in range(500):  # until the last write's notification arrived
            if '{"id": "short", "table": "public.nk"}' in heard:
                break
            await asyncio.sleep(0.01)
    finally:
        await conn.close()
        await listener.close()
    assert '{"scan": true, "table": "public.nk"}' in heard
    assert '{"id": "short", "table": "public.nk"}' in heard
    assert all(len(p.encode()) < 8000 for p in heard)


@pytest.mark.parametrize("ddl", [
    "CREATE TABLE nk (id int[] NOT NULL PRIMARY KEY, body text)",
    "CREATE TABLE nk (id jsonb NOT NULL PRIMARY KEY, body text)",
    "CREATE TABLE nk (a int NOT NULL, b text[] NOT NULL, body text, PRIMARY KEY (a, b))",
], ids=["array", "jsonb", "composite-with-array"])
async def test_plan_refuses_keys_that_cannot_travel(roles: Roles, cli: Cli, tmp_path: Path,
                                                    ddl: str) -> None:
    await roles.admin(f"SET ROLE {roles.name('owner')}; {ddl}")
    key = "[a, b]" if "PRIMARY KEY (a, b)" in ddl else "id"
    result = await cli("plan", write_spec(tmp_path, SPEC.format(key=key)), role="owner")
    assert result.code == 1, result.output
    assert "cannot travel as row keys" in result.output and "Traceback" not in result.output
