"""Every key type round-trips exactly: trigger and catch-up → task → worker → the same row.

A key that changes on the way (a numeric through a float) names no row: its vector is
never written and every catch-up scan enqueues it again, forever.
"""

# ruff: noqa: F811 - fixtures imported from tests.fixtures.providers
from __future__ import annotations

import uuid

import asyncpg
import pytest

from tests.fixtures.providers import openai_server  # noqa: F401 - fixture
from tests.integration.listen.flow import assert_vector, flow_pipeline, flowing
from tests.services.openai_server import OpenAIServer
from v10r.db import connect_dsn
from v10r.spec.identifiers import quote_ident

pytestmark = pytest.mark.integration

KEYS = {
    "numeric": ["12345678901234567890.5", "0.1", "-3", "1.50", "1e-20",
                "98765432109876543210987654321.000000001"],
    "numeric(30,5)": ["1.00500", "-99999.99999"],
    "bigint": ["9007199254740993", "-9223372036854775808", "9223372036854775807"],
    "integer": ["-2147483648", "2147483647", "0"],
    "smallint": ["-32768", "32767"],
    "double precision": ["0.1", "1e300", "-2.5e-300", "9007199254740993"],
    "real": ["0.1", "3.4e38"],
    "uuid": [str(uuid.UUID(int=0)), str(uuid.uuid4()), "ffffffff-ffff-ffff-ffff-ffffffffffff"],
    "text": ["it's", 'a "quoted" \\ back\\slash', "ünïcödé ✓ 🚀", " spaced ", "x1",
             '{"id": 1}', "line\nbreak\ttab", "", "%s $1 ;DROP"],
    "varchar(40)": ["ÄÖÜ", "12345678901234567890.5"],
    "date": ["2024-02-29", "0001-01-01", "9999-12-31"],
    "timestamptz": ["2024-02-29 23:59:59.999999+00", "1999-12-31 12:00:00+05:30"],
    "timestamp": ["2024-02-29 23:59:59.123456"],
    "mood": ["happy", "it's \"sad\""],  # an enum: compared with pg_catalog's anyenum `=`
    "positive": ["1", "2147483647"],  # a domain over integer, compared as integer
    "citext": ["MiXeD", "ünï ✓"],  # an extension type with its own `=`
}
SETUP = {
    "mood": "CREATE TYPE mood AS ENUM ('happy', 'it''s \"sad\"')",
    "positive": "CREATE DOMAIN positive AS integer CHECK (VALUE > 0)",
    "citext": "CREATE EXTENSION IF NOT EXISTS citext",
}


async def _table(conn: asyncpg.Connection, key_type: str) -> str:
    if key_type in SETUP:
        await conn.execute(SETUP[key_type])
    name = f"k_{uuid.uuid4().hex[:8]}"
    await conn.execute(f"CREATE TABLE {quote_ident(name)} "
                       f"(id {key_type} PRIMARY KEY, body text)")
    return name


async def _insert(conn: asyncpg.Connection, table: str, key_type: str, keys: list[str],
                  tag: str) -> None:
    await conn.executemany(f"INSERT INTO {quote_ident(table)} (id, body) "
                           f"VALUES ($1::text::{key_type}, $2)",
                           [(k, f"{tag} {i}") for i, k in enumerate(keys)])


@pytest.mark.parametrize("key_type", list(KEYS))
async def test_every_key_type_is_written_and_never_found_stale_again(
        pg_dsn: str, openai_server: OpenAIServer, key_type: str) -> None:
    openai_server.dimensions = 8
    keys = KEYS[key_type]
    half = len(keys) // 2
    conn = await connect_dsn(pg_dsn)
    try:
        table = await _table(conn, key_type)
        pipeline = flow_pipeline(pg_dsn, openai_server, table)
        # rows before the listener starts reach the worker through the catch-up scan,
        # the rest through their notifications
        await _insert(conn, table, key_type, keys[:half], "early")
        async with flowing(pipeline, catchup=True) as flow:
            await _insert(conn, table, key_type, keys[half:], "late")
            await flow.written(conn, len(keys))
        rows = await conn.fetch(f"SELECT body, body_embedding FROM {quote_ident(table)}")
        for row in rows:
            assert_vector(row["body_embedding"], row["body"])
        assert await flow.stale(conn) == 0
        assert flow.worker.stats.dead_lettered == 0 and flow.worker.stats.retried == 0
        assert flow.listener.stats.bad_payloads == 0
    finally:
        await conn.close()


async def test_composite_keys_of_mixed_types_round_trip(pg_dsn: str,
                                                        openai_server: OpenAIServer) -> None:
    openai_server.dimensions = 8
    conn = await connect_dsn(pg_dsn)
    try:
        table = f"c_{uuid.uuid4().hex[:8]}"
        await conn.execute(f"CREATE TABLE {table} (tenant numeric, slug text, day date, "
                           "body text, PRIMARY KEY (tenant, slug, day))")
        values = [("12345678901234567890.5", "ünï \"q\"", "2024-02-29"),
                  ("1", "a'b", "0001-01-01"), ("-0.000001", "", "2000-01-01")]
        pipeline = flow_pipeline(pg_dsn, openai_server, table, key=["tenant", "slug", "day"])
        insert = (f"INSERT INTO {table} (tenant, slug, day, body) "
                  "VALUES ($1::text::numeric, $2, $3::text::date, $4)")
        await conn.execute(insert, *values[0], "early")
        async with flowing(pipeline, catchup=True) as flow:
            for i, value in enumerate(values[1:]):
                await conn.execute(insert, *value, f"late {i}")
            await flow.written(conn, len(values))
        for row in await conn.fetch(f"SELECT body, body_embedding FROM {table}"):
            assert_vector(row["body_embedding"], row["body"])
        assert await flow.stale(conn) == 0
    finally:
        await conn.close()
