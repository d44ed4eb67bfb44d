"""A provider outage is waited out on every queue: the worker runtime pauses
consumption, probes, and resumes; no task spends an attempt, nothing is dead-lettered,
and every row ends with the vector of its current text soon after recovery.

The provider is the OpenAI-compatible test server behind a real TCP proxy that is cut
(connections refused and dropped) for the outage. `V10R_TEST_OUTAGE_S` sets the
outage of the quick variant (default 20 s); the `slow` variant holds it for 90 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator

import asyncpg
import numpy as np
import pytest

from tests.fixtures.queues import (  # noqa: F401 - fixtures
    KINDS,
    QueueFactory,
    close_factory,
    kafka_broker,
    queue_factory,
    queue_maker,
    rabbitmq_url,
    redis_url,
)
from tests.integration.work.conftest import TcpProxy, create_table, make_pipeline, task_for
from tests.services.openai_server import OpenAIServer
from tests.services.postgres import fresh_database
from v10r.db import connect_dsn
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


class Ride:
    """One queue's workers riding out the outage of a provider behind `proxy`: the
    phases are separate so that one outage can be held over several queues at once."""

    def __init__(self, db: asyncpg.Connection, factory: QueueFactory, proxy: TcpProxy,
                 pg_dsn: str) -> None:
        self.db, self.factory, self.proxy, self.pg_dsn = db, factory, proxy, pg_dsn
        self.stats: dict[str, Counters] = {}
        self.breakers = Breakers(backoff=Backoff(base_s=0.2, cap_s=2.0, jitter=0.5))
        self.stop = asyncio.Event()
        self.running: asyncio.Task[dict[str, Counters]] | None = None

    async def start(self) -> None:
        """Workers running, every row embedded before the outage."""
        self.queue = await self.factory()
        self.name = self.factory.pipeline
        self.pipeline = make_pipeline(name=self.name, database={"dsn": self.pg_dsn}, queue={
            "kind": self.queue.kind, "max_attempts": 2},  # one spent attempt would show
            embedding={"base_url": f"http://127.0.0.1:{self.proxy.port}/v1",
                       "max_retries": 1, "timeout_s": 5})
        await create_table(self.db, self.pipeline)
        self.running = asyncio.create_task(run_workers(
            [self.pipeline], self.queue, 2, self.stop, batch_size=8, stats=self.stats,
            breakers=self.breakers))
        await publish(self.db, self.queue, self.pipeline, "INSERT INTO docs (id, body) "
                      f"SELECT i, 'row ' || i FROM generate_series(1, {ROWS}) i",
                      range(1, ROWS + 1))
        await until(lambda: _none_stale(self.db), 60)

    async def change_during_outage(self) -> None:
        await publish(self.db, self.queue, self.pipeline,
                      "UPDATE docs SET body = body || ' (edited)'", range(1, ROWS + 1))
        await publish(self.db, self.queue, self.pipeline, "INSERT INTO docs (id, body) SELECT "
                      f"i, 'late ' || i FROM generate_series({ROWS + 1}, {ROWS + 10}) i",
                      range(ROWS + 1, ROWS + 11))

    async def held(self) -> None:
        """Paused, nothing spent: no retry, no dead letter."""
        assert any(b["paused"] for b in self.breakers.snapshot().values())
        assert await self.queue.dead_letters(self.name) == []
        assert self.stats[self.name].dead_lettered == 0
        assert self.stats[self.name].retried == 0

    async def recovered(self, outage_s: float) -> None:
        back = time.monotonic()
        await until(lambda: _none_stale(self.db), 30)
        print(f"\n{self.queue.kind}: every row current {time.monotonic() - back:.1f}s after "
              f"a {outage_s:.0f}s outage")

    async def held_nothing(self) -> None:
        assert await self.queue.dead_letters(self.name) == []
        assert self.stats[self.name].dead_lettered == 0
        assert self.stats[self.name].retried == 0
        assert not any(b["paused"] for b in self.breakers.snapshot().values())


async def ride_out(rides: list[Ride], proxy: TcpProxy, outage_s: float,
                   caplog: pytest.LogCaptureFixture) -> None:
    """One outage of `outage_s` seconds, held by every ride at once."""
    caplog.set_level(logging.WARNING, logger="v10r.work")
    try:
        for ride in rides:
            await ride.start()
        await proxy.cut()  # the provider goes away
        await asyncio.gather(*(ride.change_during_outage() for ride in rides))
        await asyncio.sleep(outage_s)
        for ride in rides:
            await ride.held()
        await proxy.start()  # and comes back on the same address
        await asyncio.gather(*(ride.recovered(outage_s) for ride in rides))
    finally:
        for ride in rides:
            ride.stop.set()
            if ride.running is not None:
                await asyncio.wait_for(ride.running, 30)
    for ride in rides:
        await ride.held_nothing()
    paused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("paused:")]
    assert paused and all("provider unreachable since" in line for line in paused)
    assert not any(r.exc_info for r in caplog.records if r.name == "v10r.work")


async def publish(db: asyncpg.Connection, queue: Queue, pipeline: Pipeline, statement: str,
                  keys: range) -> None:
    await db.execute(statement)
    await queue.publish(pipeline.name, [task_for(pipeline, k) for k in keys])


async def _none_stale(db: asyncpg.Connection) -> bool:
    return not await stale_rows(db)


async def test_a_provider_outage_ends_with_no_dead_letters_and_every_row_current(
        db, queue_factory, proxy, pg_dsn, caplog) -> None:  # noqa: F811 - the fixture
    await ride_out([Ride(db, queue_factory, proxy, pg_dsn)], proxy, OUTAGE_S, caplog)


@pytest.mark.slow
async def test_a_90_second_provider_outage_ends_with_no_dead_letters_on_every_queue(
        request, pg_server, proxy, caplog) -> None:
    """Every queue kind at once, each on its own database, through one 90 s outage."""
    async with contextlib.AsyncExitStack() as stack:
        rides = []
        for kind in KINDS:
            dsn = await stack.enter_async_context(fresh_database(pg_server.dsn))
            db = await connect_dsn(dsn)
            stack.push_async_callback(db.close)
            factory = QueueFactory(kind, queue_maker(kind, request))
            stack.push_async_callback(close_factory, factory)
            rides.append(Ride(db, factory, proxy, dsn))
        await ride_out(rides, proxy, 90.0, caplog)
