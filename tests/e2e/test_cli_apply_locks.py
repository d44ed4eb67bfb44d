"""`v10r apply` behind a long transaction: it waits a bounded time, says who holds the
table, retries with backoff, then fails cleanly (nothing changed) — or succeeds once the
lock is released. Real CLI, real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.test_cli_plan_apply import SPEC, V10R, v10r

pytestmark = pytest.mark.e2e

SECOND = SPEC.replace("name: docs", "name: second") + "target: {column: second_embedding}\n"


@pytest.fixture
async def blocked(pg_dsn: str, tmp_path: Path):
    """An applied pipeline, a second one to add, and an open transaction reading the table."""
    admin = await asyncpg.connect(pg_dsn)
    await admin.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    spec = tmp_path / "docs.yaml"
    spec.write_text(SPEC)
    assert (await v10r("apply", str(spec), dsn=pg_dsn))[0] == 0
    spec.write_text(SPEC + "---\n" + SECOND)
    holder = await asyncpg.connect(pg_dsn)
    tx = holder.transaction()
    await tx.start()
    await holder.fetchval("SELECT count(*) FROM docs")  # holds ACCESS SHARE until the end
    try:
        yield spec, admin, holder, tx
    finally:
        if not holder.is_closed():
            await holder.close()
        await admin.close()


async def second_exists(conn: asyncpg.Connection) -> bool:
    return await conn.fetchval("SELECT count(*) FROM pg_attribute WHERE attrelid = "
                               "'docs'::regclass AND attname = 'second_embedding'") == 1


async def test_apply_gives_up_clearly_and_changes_nothing(blocked, pg_dsn: str) -> None:
    spec, admin, holder, _ = blocked
    code, out, err = await v10r("apply", str(spec), "--lock-timeout", "0.2",
                                "--lock-retries", "2", dsn=pg_dsn)
    assert code == 1, out + err
    pid = holder.get_server_pid()
    assert "waiting for the lock on \"public\".\"docs\"" in err
    assert err.count("retrying in") == 2
    assert f"could not lock \"public\".\"docs\" within 0.2s, 3 time(s); held by pid {pid} " \
           "(idle in transaction" in err
    assert "hint:" in err and "Traceback" not in err
    assert not await second_exists(admin)
    assert await admin.fetchval("SELECT count(*) FROM v10r.pipelines") == 1
    assert await holder.fetchval("SELECT 1") == 1  # the user's transaction was left alone


async def test_apply_succeeds_once_the_lock_is_released(blocked, pg_dsn: str) -> None:
    spec, admin, _, tx = blocked
    env = {**os.environ, "DATABASE_URL": pg_dsn, "NO_COLOR": "1"}
    proc = await asyncio.create_subprocess_exec(
        V10R, "apply", str(spec), "--lock-timeout", "0.2", "--lock-retries", "20", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    async with asyncio.timeout(60):
        while b"waiting for the lock" not in (line := await proc.stderr.readline()):
            assert line, "apply ended without waiting"
    await tx.commit()
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err
    assert await second_exists(admin)
