"""Any role that can connect may NOTIFY a v10r channel. Forged payloads never become
tasks, and a bad key that reaches the worker by another way fails only itself."""

# ruff: noqa: F811 - fixtures imported from tests.fixtures.providers
from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.fixtures.providers import openai_server  # noqa: F401 - fixture
from tests.fixtures.roles import login_role
from tests.integration.listen.flow import assert_vector, flow_pipeline, flowing
from tests.integration.listen.helpers import fast_settings, running, wait_until
from tests.integration.work.conftest import FakeProvider, create_table, make_pipeline, task_for
from tests.services.openai_server import OpenAIServer
from v10r.db import connect_dsn, create_pool
from v10r.listen.listener import Listener
from v10r.listen.targets import Target
from v10r.queues.memory import MemoryQueue
from v10r.spec.model import Database
from v10r.work.core import BatchProcessor, Status

pytestmark = pytest.mark.integration

UID = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
ABSENT = [-5, 999, -2147483648, 2147483647, 0]


@pytest.fixture
async def mallory(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A role with no privilege on any table: it can only connect (and so NOTIFY)."""
    admin = await asyncpg.connect(pg_dsn)
    try:
        async with login_role(admin) as conn:
            yield conn
    finally:
        await admin.close()


def forgeries(channel_table: str) -> list[str]:
    def payload(key: object, table: str = channel_table) -> str:
        return json.dumps({"id": key, "table": table})
    return [
        payload("x1"), payload(2147483648), payload(-2147483649), payload(1.5),
        payload(None), payload(True), payload([1, 2]), payload({"id": 1}),
        payload({"id": 1, "extra": 2}), payload(UID), payload("1" * 7000),
        payload(1, "public.someone_else"), json.dumps({"table": channel_table}),
        json.dumps({"id": 1, "table": channel_table, "pipeline": "other"}),
        "[" * 3900 + "]" * 3900, "not json at all", "", "\x1b[2J\x1b]0;pwned\x07",
        f'{{"id": NaN, "table": "{channel_table}"}}',
        json.dumps({"id": 1, "table": channel_table}) + "x",
    ]


async def test_forged_notifications_are_dropped_and_every_real_update_is_written(
        pg_dsn: str, openai_server: OpenAIServer, mallory: asyncpg.Connection) -> None:
    openai_server.dimensions = 8
    conn = await connect_dsn(pg_dsn)
    table = f"docs_{uuid.uuid4().hex[:8]}"
    try:
        await conn.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY, body text)")
        await conn.execute(f"INSERT INTO {table} SELECT i, 'old ' || i "
                           "FROM generate_series(1, 4) i")
        pipeline = flow_pipeline(pg_dsn, openai_server, table)
        channel = Target.of(pipeline).channel
        forged = forgeries(f"public.{table}")
        async with flowing(pipeline) as flow:
            for i in range(1, 5):  # each legitimate update between forgeries
                for payload in forged:
                    await mallory.execute("SELECT pg_notify($1, $2)", channel, payload)
                for absent in ABSENT:  # keys, but of no row: one cheap SELECT, then done
                    await mallory.execute("SELECT pg_notify($1, $2)", channel,
                                          json.dumps({"id": absent, "table": f"public.{table}"}))
                await conn.execute(f"UPDATE {table} SET body = $1 WHERE id = $2", f"new {i}", i)
            with pytest.raises(asyncpg.InvalidParameterValueError):  # PostgreSQL's own bound
                await mallory.execute("SELECT pg_notify($1, $2)", channel, "x" * (1 << 20))
            await flow.written(conn, 4)
            await wait_until(lambda: flow.listener.stats.notifications
                             == 4 * (len(forged) + len(ABSENT) + 1))
            await wait_until(lambda: flow.worker.stats.processed == 4 * (len(ABSENT) + 1))
            assert flow.listener.listening.is_set()
        for row in await conn.fetch(f"SELECT id, body, body_embedding FROM {table}"):
            assert row["body"] == f"new {row['id']}"
            assert_vector(row["body_embedding"], row["body"])
        assert flow.listener.stats.bad_payloads == 4 * len(forged)
        assert flow.listener.stats.published == 4 * (len(ABSENT) + 1)
        assert flow.worker.stats.dead_lettered == 0 and flow.worker.stats.retried == 0
        assert flow.worker.stats.written == 4
        assert await flow.queue.dead_letters(pipeline.name) == []
        assert sum(len(r.texts) for r in openai_server.requests) == 4  # one text per update
    finally:
        await conn.close()


async def test_forged_composite_keys_are_dropped(
        pg_dsn: str, openai_server: OpenAIServer, mallory: asyncpg.Connection) -> None:
    openai_server.dimensions = 8
    conn = await connect_dsn(pg_dsn)
    table = f"pairs_{uuid.uuid4().hex[:8]}"
    try:
        await conn.execute(f"CREATE TABLE {table} (a bigint, b uuid, body text, "
                           "PRIMARY KEY (a, b))")
        await conn.execute(f"INSERT INTO {table} VALUES (1, '{UID}', 'old')")
        pipeline = flow_pipeline(pg_dsn, openai_server, table, key=["a", "b"])
        channel, label = Target.of(pipeline).channel, f"public.{table}"
        forged = [{"a": 1}, {"b": UID}, {"a": 1, "b": UID, "c": 3}, {"a": "1", "b": UID},
                  {"a": 1, "b": "zz"}, {"a": None, "b": UID}, {"a": 2**63, "b": UID},
                  [1, UID], 1, UID, {"A": 1, "b": UID}]
        async with flowing(pipeline) as flow:
            for key in forged:
                await mallory.execute("SELECT pg_notify($1, $2)", channel,
                                      json.dumps({"id": key, "table": label}))
            await conn.execute(f"UPDATE {table} SET body = 'new' WHERE a = 1")
            await flow.written(conn, 1)
            await wait_until(lambda: flow.listener.stats.bad_payloads == len(forged))
        assert_vector(await conn.fetchval(f"SELECT body_embedding FROM {table}"), "new")
        assert flow.listener.stats.published == 1
        assert flow.worker.stats.dead_lettered == 0 and flow.worker.stats.retried == 0
    finally:
        await conn.close()


async def test_a_flood_of_scan_notifications_costs_one_scan(
        make_table, mallory: asyncpg.Connection) -> None:
    table = await make_table()
    listener = Listener([table.target], MemoryQueue(),
                        fast_settings(catchup=False, catchup_interval_s=None, scan_gap_s=600))
    async with running(listener):
        for _ in range(50):
            await mallory.execute("SELECT pg_notify($1, $2)", table.target.channel,
                                  json.dumps({"scan": True, "table": table.target.table}))
        await wait_until(lambda: listener.stats.notifications == 50)
        await wait_until(lambda: listener.stats.catchups == 1)
        await asyncio.sleep(0.2)  # the other 49 wait, coalesced, for the gap to pass
    assert listener.stats.catchups == 1


async def test_the_payloads_table_cannot_steer_tasks_to_another_pipeline(
        pg_dsn: str, openai_server: OpenAIServer, mallory: asyncpg.Connection) -> None:
    """A payload naming another watched table on this channel is refused: the channel, not
    the payload, says which table a key belongs to."""
    openai_server.dimensions = 8
    conn = await connect_dsn(pg_dsn)
    try:
        tables = [f"t_{uuid.uuid4().hex[:8]}" for _ in range(2)]
        for t in tables:
            await conn.execute(f"CREATE TABLE {t} (id bigint PRIMARY KEY, body text)")
            await conn.execute(f"INSERT INTO {t} VALUES (1, 'one')")
        first = flow_pipeline(pg_dsn, openai_server, tables[0])
        async with flowing(first) as flow:
            await mallory.execute("SELECT pg_notify($1, $2)", Target.of(first).channel,
                                  json.dumps({"id": 1, "table": f"public.{tables[1]}"}))
            await wait_until(lambda: flow.listener.stats.bad_payloads == 1)
        assert flow.listener.stats.published == 0
    finally:
        await conn.close()


# ---- tasks that reach the worker anyway (another tool, a corrupted queue, an old release)

KEYED_TABLES = {
    "bigint": ("1", ["x1", "9223372036854775808", "1.5", "", " 1 1"]),
    "text": ("a", ["\ud800", "x\x00y", "z" * 9000]),
    "integer": ("1", ["2147483648", "-2147483649", "abc"]),
    "uuid": (UID, ["not-a-uuid", "a0eebc99", UID + "0"]),
    "date": ("2024-02-29", ["2023-02-29", "yesterday-ish", "99999-99-99"]),
    "numeric": ("1.5", ["1e999999999", "1,5", "abc"]),
    "positive": ("1", ["-5", "0"]),  # a domain whose CHECK refuses them
}


@pytest.mark.parametrize("key_type", list(KEYED_TABLES))
async def test_a_bad_key_in_a_batch_fails_only_itself(pg_dsn: str, key_type: str) -> None:
    good, bad = KEYED_TABLES[key_type]
    conn = await connect_dsn(pg_dsn)
    pool = await create_pool(_database(pg_dsn), max_size=2)
    try:
        column_type = key_type
        if key_type == "positive":
            await conn.execute("CREATE DOMAIN positive AS integer CHECK (VALUE > 0)")
        pipeline = make_pipeline(table=f"public.k_{uuid.uuid4().hex[:8]}")
        names = await create_table(conn, pipeline, key_types=(column_type,))
        await conn.execute(f"INSERT INTO {names.qualified_table} (id, body) "
                           f"VALUES ($1::text::{column_type}, 'good')", good)
        processor = BatchProcessor(pipeline, names, pool, pool, FakeProvider())
        gone = {"text": "b", "bigint": "2", "integer": "-7", "uuid": str(uuid.UUID(int=5)),
                "date": "1999-01-01", "numeric": "2.5", "positive": "9"}[key_type]
        tasks = ([task_for(pipeline, b) for b in bad] + [task_for(pipeline, good)]
                 + [task_for(pipeline, gone)])
        outcome = await processor.process(tasks)
        statuses = [o.status for o in outcome.outcomes]
        assert statuses == [Status.FAILED] * len(bad) + [Status.WRITTEN, Status.MISSING]
        assert not any(o.retryable for o in outcome.outcomes[:len(bad)])
        assert all("key" in (o.error or "") for o in outcome.outcomes[:len(bad)])
        stored = await conn.fetchval(f"SELECT body_embedding FROM {names.qualified_table}")
        assert stored is not None
    finally:
        await pool.close()
        await conn.close()


async def test_hostile_key_text_is_escaped_in_the_error(pg_dsn: str) -> None:
    conn = await connect_dsn(pg_dsn)
    pool = await create_pool(_database(pg_dsn), max_size=2)
    try:
        pipeline = make_pipeline(table=f"public.k_{uuid.uuid4().hex[:8]}")
        names = await create_table(conn, pipeline, key_types=("date",))
        processor = BatchProcessor(pipeline, names, pool, pool, FakeProvider())
        outcome = await processor.process([task_for(pipeline, "\x1b[2J\x1b]0;pwned\x07")])
        error = outcome.outcomes[0].error or ""
        assert outcome.outcomes[0].status is Status.FAILED and "\x1b" not in error
        assert "\\x1b" in error
    finally:
        await pool.close()
        await conn.close()


def _database(dsn: str) -> Database:
    return Database(dsn=dsn)
