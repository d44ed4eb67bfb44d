"""Reads from a real streaming replica (`database.read_dsn`), writes to the primary: a
replica that lags never leaves a row stale — what it shows as gone, unchanged or
superseded is read again from the primary, and a catch-up scan waits for the replica
or reads the primary."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from tests.integration.work.conftest import FakeProvider, create_table, make_pipeline, task_for
from tests.services.pg_replica import replica_dsn, set_replay, streaming_replica, wait_replayed
from v10r import db as v10r_db
from v10r.compile.content_hash import fingerprint, source_hash, stored_hash
from v10r.db import connect_caught_up, create_pool
from v10r.embedded.postgres import EmbeddedPostgres
from v10r.listen.catchup import catch_up
from v10r.listen.targets import Target
from v10r.queues.memory import MemoryQueue
from v10r.spec.model import Database
from v10r.work.core import BatchProcessor, Status

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def replica(pg_server: EmbeddedPostgres) -> Iterator[EmbeddedPostgres]:
    with streaming_replica(pg_server) as server:
        yield server


@pytest.fixture
async def dsns(pg_dsn: str, replica: EmbeddedPostgres) -> AsyncIterator[tuple[str, str]]:
    read = replica_dsn(replica, pg_dsn)
    await wait_replayed(pg_dsn, read)  # the fresh database exists on the replica too
    try:
        yield pg_dsn, read
    finally:
        await set_replay(read, paused=False)


async def current_everywhere(primary: asyncpg.Connection, pipeline) -> list[int]:
    """Keys whose stored hash is not the hash of their current text (on the primary)."""
    rows = await primary.fetch("SELECT id, body, body_embedding_hash AS h, body_embedding "
                               "FROM public.docs ORDER BY id")
    want = fingerprint(pipeline)
    return [r["id"] for r in rows if r["body_embedding"] is None
            or r["h"] != stored_hash(want, source_hash([r["body"]]))]


async def test_a_lagging_replica_never_leaves_a_row_stale(dsns) -> None:
    primary_dsn, read_dsn = dsns
    pipeline = make_pipeline(database={"dsn": primary_dsn, "read_dsn": read_dsn})
    primary = await asyncpg.connect(primary_dsn)
    read_pool = await create_pool(Database(dsn=read_dsn), max_size=2)
    write_pool = await create_pool(Database(dsn=primary_dsn), max_size=2)
    try:
        names = await create_table(primary, pipeline)
        await primary.execute("INSERT INTO docs (id, body) SELECT i, 'v1 ' || i "
                              "FROM generate_series(1, 20) i")
        provider = FakeProvider()
        processor = BatchProcessor(pipeline, names, read_pool, write_pool, provider)
        await processor.process([task_for(pipeline, i) for i in range(1, 11)])
        await wait_replayed(primary_dsn, read_dsn)
        await set_replay(read_dsn, paused=True)  # the replica stops here
        await primary.execute("UPDATE docs SET body = 'v2 ' || id WHERE id <= 10")  # unchanged?
        await primary.execute("UPDATE docs SET body = 'v2 ' || id WHERE id > 15")  # superseded
        await primary.execute("INSERT INTO docs (id, body) SELECT i, 'new ' || i "  # gone?
                              "FROM generate_series(21, 30) i")
        provider.texts.clear()

        outcome = await processor.process([task_for(pipeline, i) for i in range(1, 31)])

        assert outcome.count(Status.WRITTEN) == 30
        assert await current_everywhere(primary, pipeline) == []
        assert set(provider.texts) >= {f"v2 {i}" for i in range(1, 11)}
        assert set(provider.texts) >= {f"new {i}" for i in range(21, 31)}
        await set_replay(read_dsn, paused=False)
        await wait_replayed(primary_dsn, read_dsn)
        provider.texts.clear()
        again = await processor.process([task_for(pipeline, i) for i in range(1, 31)])
        assert again.count(Status.UNCHANGED) == 30 and provider.texts == []  # no loop
    finally:
        await read_pool.close()
        await write_pool.close()
        await primary.close()


async def test_a_scan_reads_the_replica_once_it_has_caught_up(dsns) -> None:
    primary_dsn, read_dsn = dsns
    database = Database(dsn=primary_dsn, read_dsn=read_dsn)
    conn = await connect_caught_up(database)
    try:
        assert await conn.fetchval("SELECT pg_is_in_recovery()") is True
    finally:
        await conn.close()


async def test_a_scan_passes_over_a_lagging_replica_and_finds_every_row(
        dsns, monkeypatch, caplog) -> None:
    primary_dsn, read_dsn = dsns
    pipeline = make_pipeline(database={"dsn": primary_dsn, "read_dsn": read_dsn})
    primary = await asyncpg.connect(primary_dsn)
    try:
        await create_table(primary, pipeline)
        await wait_replayed(primary_dsn, read_dsn)
        await set_replay(read_dsn, paused=True)
        await primary.execute("INSERT INTO docs (id, body) SELECT i, 'row ' || i "
                              "FROM generate_series(1, 25) i")
        monkeypatch.setattr(v10r_db, "REPLICA_WAIT_S", 0.5)
        caplog.set_level(logging.WARNING, logger="v10r.db")
        queue = MemoryQueue()
        result = await asyncio.wait_for(catch_up([Target.of(pipeline)], queue,
                                                 interactive=False), 30)
    finally:
        await primary.close()
    assert result.enqueued[pipeline.name] == 25  # the replica shows none of them
    assert "reading the primary instead" in caplog.text
