"""A provider outage is waited out on every queue: the worker runtime pauses
consumption, probes, and resumes; no task spends an attempt, nothing is dead-lettered,
and every row ends with the vector of its current text soon after recovery.

The provider is the OpenAI-compatible test server behind a real TCP proxy that is cut
(connections refused and dropped) for the outage. `V10R_TEST_OUTAGE_S` sets the
outage of the quick variant (default 20 s); the `slow` variant holds it for 90 s.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator

import asyncpg
import numpy as np
import pytest

from tests.fixtures.queues import (  # noqa: F401 - fixtures
    QueueFactory,
    kafka_broker,
    queue_factory,
    rabbitmq_url,
    redis_url,
)
from tests.integration.work.conftest import TcpProxy, create_table, make_pipeline, task_for
from tests.services.openai_server import OpenAIServer
from v10r.providers.deterministic import deterministic_vector
from v10r.providers.retry import Backoff
from v10r.queues.base import Queue
from v10r.spec.model import Pipeline
from v10r.work.breaker import Breakers
from v10r.work.runner import run_workers
from v10r.work.settle import Counters

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

OUTAGE_S = float(os.environ.get("V10R_TEST_OUTAGE_S", "20"))
ROWS = 40


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(dimensions=8) as running:
        yield running


@pytest.fixture
async def proxy(server: OpenAIServer) -> AsyncIterator[TcpProxy]:
    hop = await TcpProxy("127.0.0.1", server.port).start()
    try:
        yield hop
    finally:
        await hop.cut()


async def stale_rows(db: asyncpg.Connection) -> list[int]:
    """Rows whose stored vector is not the embedding of their current text."""
    rows = await db.fetch("SELECT id, body, body_embedding::real[] AS v FROM docs")
    return [r["id"] for r in rows if r["v"] is None or not np.allclose(
        np.array(r["v"], dtype=np.float32), deterministic_vector(r["body"], 8), atol=1e-6)]


async def until(check, timeout: float) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.1)


async def ride_out(db: asyncpg.Connection, queue_factory: QueueFactory, proxy: TcpProxy,
                   pg_dsn: str, outage_s: float, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="v10r.work")
    queue = await queue_factory()
    name = queue_factory.pipeline
    pipeline = make_pipeline(name=name, database={"dsn": pg_dsn}, queue={
        "kind": queue.kind, "max_attempts": 2},  # one spent attempt would show at once
        embedding={"base_url": f"http://127.0.0.1:{proxy.port}/v1", "max_retries": 1,
                   "timeout_s": 5})
    await create_table(db, pipeline)
    stats: dict[str, Counters] = {}
    breakers = Breakers(backoff=Backoff(base_s=0.2, cap_s=2.0, jitter=0.5))
    stop = asyncio.Event()
    running = asyncio.create_task(run_workers([pipeline], queue, 2, stop, batch_size=8,
                                              stats=stats, breakers=breakers))
    try:
        await publish(db, queue, pipeline, "INSERT INTO docs (id, body) SELECT i, 'row ' || i "
                      f"FROM generate_series(1, {ROWS}) i", range(1, ROWS + 1))
        await until(lambda: _none_stale(db), 60)

        await proxy.cut()  # the provider goes away
        await publish(db, queue, pipeline, "UPDATE docs SET body = body || ' (edited)'",
                      range(1, ROWS + 1))
        await publish(db, queue, pipeline, "INSERT INTO docs (id, body) SELECT i, 'late ' || i "
                      f"FROM generate_series({ROWS + 1}, {ROWS + 10}) i",
                      range(ROWS + 1, ROWS + 11))
        await asyncio.sleep(outage_s)
        assert any(b["paused"] for b in breakers.snapshot().values())
        assert await queue.dead_letters(name) == []
        assert stats[name].dead_lettered == 0 and stats[name].retried == 0

        await proxy.start()  # and comes back on the same address
        back = time.monotonic()
        await until(lambda: _none_stale(db), 30)
        print(f"\n{queue.kind}: every row current {time.monotonic() - back:.1f}s after a "
              f"{outage_s:.0f}s outage")
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)
    assert await queue.dead_letters(name) == []
    assert stats[name].dead_lettered == 0 and stats[name].retried == 0
    paused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("paused:")]
    assert paused and all("provider unreachable since" in line for line in paused)
    assert not any(r.exc_info for r in caplog.records if r.name == "v10r.work")
    assert not any(b["paused"] for b in breakers.snapshot().values())


async def publish(db: asyncpg.Connection, queue: Queue, pipeline: Pipeline, statement: str,
                  keys: range) -> None:
    await db.execute(statement)
    await queue.publish(pipeline.name, [task_for(pipeline, k) for k in keys])


async def _none_stale(db: asyncpg.Connection) -> bool:
    return not await stale_rows(db)


async def test_a_provider_outage_ends_with_no_dead_letters_and_every_row_current(
        db, queue_factory, proxy, pg_dsn, caplog) -> None:
    await ride_out(db, queue_factory, proxy, pg_dsn, OUTAGE_S, caplog)


@pytest.mark.slow
async def test_a_90_second_provider_outage_ends_with_no_dead_letters(
        db, queue_factory, proxy, pg_dsn, caplog) -> None:
    await ride_out(db, queue_factory, proxy, pg_dsn, 90.0, caplog)
