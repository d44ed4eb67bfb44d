"""The compose stack's roles (compose/initdb/10-v10r-roles.sh), run for real with psql:
the workers' role may write the application table but not v10r's bookkeeping."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.security.conftest import run_v10r, write_spec

pytestmark = [pytest.mark.e2e]

SCRIPT = Path(__file__).resolve().parents[2] / "compose" / "initdb" / "10-v10r-roles.sh"
ROLES = ("v10r_owner", "v10r_writer", "v10r_reader")
SPEC = """\
name: articles
database: {dsn: "${DATABASE_URL}"}
source: {table: public.articles, columns: [title, body]}
embedding: {provider: local}
target: {index: none}
"""


def _dsn(admin_dsn: str, role: str) -> str:
    parts = urlsplit(admin_dsn)
    return f"postgresql://{role}@{parts.hostname}:{parts.port}{parts.path}"


@pytest.fixture
async def compose_roles(pg_dsn: str) -> AsyncIterator[str]:
    """The test database after the compose init script ran on it."""
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("psql is not installed")
    parts = urlsplit(pg_dsn)
    env = {**os.environ, "PGHOST": parts.hostname or "", "PGPORT": str(parts.port),
           "POSTGRES_USER": parts.username or "postgres", "POSTGRES_DB": parts.path[1:],
           "V10R_OWNER_PASSWORD": "o", "V10R_WRITER_PASSWORD": "w",
           "V10R_READER_PASSWORD": "r"}
    proc = await asyncio.create_subprocess_exec("bash", str(SCRIPT), env=env,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    try:
        assert proc.returncode == 0, out.decode()
        yield pg_dsn
    finally:
        admin = await asyncpg.connect(pg_dsn)
        try:
            for role in ROLES:
                await admin.execute(f"DROP OWNED BY {role} CASCADE")
            await admin.execute(f"DROP ROLE IF EXISTS {', '.join(ROLES)}")
        finally:
            await admin.close()


async def test_the_writer_may_update_the_table_but_not_the_bookkeeping(
        compose_roles: str, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, SPEC)
    applied = await run_v10r("apply", spec, env={"DATABASE_URL": _dsn(compose_roles,
                                                                      "v10r_owner")})
    assert applied.code == 0, applied.output
    writer = await asyncpg.connect(_dsn(compose_roles, "v10r_writer"))
    reader = await asyncpg.connect(_dsn(compose_roles, "v10r_reader"))
    try:
        assert await writer.fetchval("SELECT count(*) FROM v10r.pipelines") == 1
        for sql in ("UPDATE v10r.pipelines SET table_name = 'users'",
                    "DELETE FROM v10r.pipelines",
                    "INSERT INTO v10r.pipelines SELECT * FROM v10r.pipelines"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await writer.execute(sql)
        await writer.execute("UPDATE public.articles SET title_embedding_note = 'x'")
        assert await reader.fetchval("SELECT count(*) FROM v10r.pipelines") == 1
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await reader.execute("UPDATE public.articles SET title_embedding_note = 'x'")
    finally:
        await writer.close()
        await reader.close()
    status = await run_v10r("status", spec, env={"DATABASE_URL": _dsn(compose_roles,
                                                                      "v10r_reader")})
    assert status.code in (0, 3), status.output
