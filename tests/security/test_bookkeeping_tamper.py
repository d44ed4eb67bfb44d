"""A role that may write v10r's bookkeeping (workers' writer role, as some deployments
grant it) must not be able to make the owner's `v10r apply` destroy the user's data:
everything destructive is checked against the catalog's ownership markers, which only
the table's owner can set. Real roles, real CLI, real PostgreSQL + pgvector."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.test_cli_plan_apply import SPEC, v10r
from v10r.reconcile import applied_state
from v10r.spec.load import load_pipelines

pytestmark = pytest.mark.e2e

USERS = ("CREATE TABLE users (id int PRIMARY KEY, email text UNIQUE, password_hash text);"
         "INSERT INTO users VALUES (1, 'a@example.com', 'pbkdf2$secret')")
DOCS = ("CREATE TABLE docs (id int PRIMARY KEY, body text, email text);"
        "INSERT INTO docs SELECT g, 'text ' || g, 'x' FROM generate_series(1, 5) g")


@dataclass
class Setup:
    owner: asyncpg.Connection
    writer: asyncpg.Connection
    specs: Path
    dsn: str


@pytest.fixture
async def setup(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Setup]:
    owner = await asyncpg.connect(pg_dsn)
    role = f"writer_{uuid.uuid4().hex[:10]}"
    await owner.execute(USERS + ";" + DOCS)
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "docs.yaml").write_text(SPEC)
    code, _, err = await v10r("apply", str(specs), dsn=pg_dsn)
    assert code == 0, err
    await owner.execute(f"CREATE ROLE {role} LOGIN; GRANT USAGE ON SCHEMA v10r TO {role}; "
                        f"GRANT SELECT, UPDATE ON v10r.pipelines TO {role}; "
                        f"GRANT SELECT, UPDATE ON docs, users TO {role}")
    writer = await asyncpg.connect(pg_dsn.replace("postgres@", f"{role}@", 1))
    try:
        yield Setup(owner, writer, specs, pg_dsn)
    finally:
        await writer.close()
        await owner.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")
        await owner.close()


async def users_intact(conn: asyncpg.Connection) -> bool:
    row = await conn.fetchrow("SELECT email, password_hash FROM users WHERE id = 1")
    index = await conn.fetchval("SELECT to_regclass('users_email_key') IS NOT NULL")
    return bool(row) and tuple(row) == ("a@example.com", "pbkdf2$secret") and index


@pytest.mark.parametrize("tamper", [
    "table_name = 'users', columns = ARRAY['password_hash', 'email']",
    "table_name = 'users', index_name = 'users_email_key'",
    "columns = columns || ARRAY['email']",  # the user's own column on the same table
])
async def test_a_tampered_row_never_gets_the_users_data_dropped(setup: Setup,
                                                                tamper: str) -> None:
    await setup.writer.execute(f"UPDATE v10r.pipelines SET {tamper} WHERE name = 'docs'")
    (setup.specs / "docs.yaml").unlink()
    (setup.specs / "other.yaml").write_text(SPEC.replace("name: docs", "name: other") +
                                            "target: {column: other_embedding, index: none}\n")

    code, out, err = await v10r("apply", str(setup.specs), "--prune", "--drop-columns",
                                "--yes", dsn=setup.dsn)
    assert code == 1, out + err
    assert "refusing to drop" in err and "marker" in err and "Traceback" not in err
    assert await users_intact(setup.owner)
    assert await setup.owner.fetchval("SELECT count(*) FROM docs WHERE email = 'x'") == 5
    assert await setup.owner.fetchval(  # nothing changed: the failed apply rolled back
        "SELECT count(*) FROM v10r.pipelines") == 1


async def test_a_live_column_listed_as_retired_is_never_dropped(setup: Setup) -> None:
    await setup.writer.execute("UPDATE v10r.pipelines SET retired = ARRAY['body_embedding'] "
                               "WHERE name = 'docs'")
    code, out, err = await v10r("apply", str(setup.specs), "--drop-columns", "--yes",
                                dsn=setup.dsn)
    assert code == 1 and "refusing to drop" in err, out + err
    assert await setup.owner.fetchval(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = 'docs'::regclass "
        "AND attname = 'body_embedding' AND NOT attisdropped") == 1


async def test_workers_never_follow_bookkeeping_to_a_users_column(setup: Setup) -> None:
    await setup.writer.execute("UPDATE v10r.pipelines SET embedding_column = 'email' "
                               "WHERE name = 'docs'")
    code, out, err = await v10r("status", str(setup.specs), dsn=setup.dsn)
    assert code == 3
    assert "column email" in out and "drifted" in out, out + err
    [pipeline] = load_pipelines([setup.specs])
    state = (await applied_state(setup.owner, [pipeline]))["docs"]
    assert not state.up_to_date  # the listener refuses to start, workers wait
