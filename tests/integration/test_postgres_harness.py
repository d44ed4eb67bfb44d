"""The test harness itself: the embedded server really has pgvector; PG 15 really lacks it."""

import asyncpg
import pytest

pytestmark = pytest.mark.integration


async def test_embedded_server_has_pgvector(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        version = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        assert version is not None and version.startswith("0.8")
        assert await conn.fetchval("SELECT '[1,2,3]'::vector <=> '[1,2,3]'::vector") == 0
    finally:
        await conn.close()


async def test_machine_postgres_has_no_pgvector(pg15_dsn: str) -> None:
    conn = await asyncpg.connect(pg15_dsn)
    try:
        available = await conn.fetchval(
            "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")
        assert available == 0
    finally:
        await conn.close()
