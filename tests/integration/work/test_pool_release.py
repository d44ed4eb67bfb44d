"""The worker's connection pools: a connection goes back without asyncpg's reset round
trip (`RESET ALL; UNLISTEN *; CLOSE ALL` and an advisory unlock), yet nothing a batch
left half-done survives its release."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from v10r.db import create_pool
from v10r.spec.model import Database

pytestmark = pytest.mark.integration


@pytest.fixture
async def table(pg_dsn: str):
    name = f"pool_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(pg_dsn)
    await conn.execute(f"CREATE TABLE {name} (id int PRIMARY KEY)")
    try:
        yield name
    finally:
        await conn.execute(f"DROP TABLE {name}")
        await conn.close()


async def test_a_transaction_left_open_is_rolled_back_on_release(pg_dsn: str, table: str) -> None:
    pool = await create_pool(Database(dsn=pg_dsn), min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await conn.execute(f"BEGIN; INSERT INTO {table} VALUES (1)")
            assert conn.is_in_transaction()
        async with pool.acquire() as conn:  # the same connection: the pool holds one
            assert not conn.is_in_transaction()
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0
            await conn.execute(f"INSERT INTO {table} VALUES (2)")  # and it still works
        async with pool.acquire() as conn:
            assert await conn.fetchval(f"SELECT array_agg(id) FROM {table}") == [2]
    finally:
        await pool.close()


async def test_a_failed_statement_leaves_the_connection_usable(pg_dsn: str, table: str) -> None:
    pool = await create_pool(Database(dsn=pg_dsn), min_size=1, max_size=1)
    try:
        with pytest.raises(asyncpg.UniqueViolationError):
            async with pool.acquire() as conn:
                await conn.execute(f"INSERT INTO {table} VALUES (1)")
                await conn.execute(f"INSERT INTO {table} VALUES (1)")
        async with pool.acquire() as conn:
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 1
    finally:
        await pool.close()
