"""Soak: a long stream of changes (hot rows updated many times, inserts, rows deleted
while their tasks are in flight) through the worker runtime on every queue. It ends
with every row's vector the embedding of its current text, no dead letters, and a
process whose memory stayed flat.

Small by default (well under a minute per queue); `V10R_SOAK_CHANGES=100000` scales it.
Run alone with `pytest -m slow tests/integration/work/test_soak.py`.
"""

from __future__ import annotations

import asyncio
import os
import random
import resource
import time

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
from tests.integration.work.conftest import create_table, make_pipeline, task_for
from v10r.providers.deterministic import DeterministicProvider, deterministic_vector
from v10r.spec.model import Pipeline
from v10r.work.runner import run_workers
from v10r.work.settle import Counters

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(3600)]

CHANGES = int(os.environ.get("V10R_SOAK_CHANGES", "10000"))
STEP = 200  # changes per statement (and per publish)
RSS_GROWTH_MB = 64  # allowed growth of the process after warm-up


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


async def stale_rows(db: asyncpg.Connection) -> int:
    rows = await db.fetch("SELECT id, body, body_embedding::real[] AS v FROM docs")
    return sum(1 for r in rows if r["v"] is None or not np.allclose(
        np.array(r["v"], dtype=np.float32), deterministic_vector(r["body"], 8), atol=1e-6))


async def retried(db: asyncpg.Connection, statement: str, *args: object) -> None:
    """As an application would: a deadlock with the workers' writes is tried again."""
    for _ in range(20):
        try:
            await db.execute(statement, *args)
            return
        except asyncpg.DeadlockDetectedError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"still deadlocked: {statement}")


class Changes:
    """Random inserts, hot-row updates and deletes; publishes a task for each change."""

    def __init__(self, db: asyncpg.Connection, queue, pipeline: Pipeline) -> None:  # type: ignore[no-untyped-def]
        self.db, self.queue, self.pipeline = db, queue, pipeline
        self.rng = random.Random(14)
        self.next_id = 1
        self.version = 0

    async def step(self, count: int) -> None:
        inserts = count // 4
        ids = list(range(self.next_id, self.next_id + inserts))
        self.next_id += inserts
        hot = max(10, self.next_id // 20)  # the first 5 % of rows take most updates
        updates = [self.rng.randrange(1, hot + 1) if self.rng.random() < 0.8
                   else self.rng.randrange(1, self.next_id) for _ in range(count - inserts - 5)]
        deletes = [self.rng.randrange(1, self.next_id) for _ in range(5)]
        self.version += 1
        await self.db.execute("INSERT INTO docs (id, body) SELECT i, 'text ' || i "
                              "FROM unnest($1::bigint[]) i", ids)
        await retried(self.db, "UPDATE docs SET body = 'text ' || id || ' v' || $2 "
                      "WHERE id = ANY($1::bigint[])", updates, str(self.version))
        await self.publish(ids + updates + deletes)
        await retried(self.db, "DELETE FROM docs WHERE id = ANY($1::bigint[])", deletes)

    async def publish(self, keys: list[int]) -> None:
        await self.queue.publish(self.pipeline.name, [task_for(self.pipeline, k) for k in keys])


async def test_a_stream_of_changes_ends_current_with_flat_memory(db, queue_factory: QueueFactory,  # noqa: F811
                                                                 pg_dsn: str) -> None:
    queue = await queue_factory()
    pipeline = make_pipeline(name=queue_factory.pipeline, database={"dsn": pg_dsn},
                             queue={"kind": queue.kind})
    await create_table(db, pipeline)
    stats: dict[str, Counters] = {}
    stop = asyncio.Event()
    running = asyncio.create_task(run_workers(
        [pipeline], queue, 2, stop, batch_size=128, stats=stats,
        providers={pipeline.name: DeterministicProvider(8, model="fake-model")}))
    changes = Changes(db, queue, pipeline)
    started, warm = time.monotonic(), 0.0
    try:
        for done in range(0, CHANGES, STEP):
            await changes.step(min(STEP, CHANGES - done))
            if not warm and done >= CHANGES // 4:  # after warm-up: pools, caches, imports
                warm = rss_mb()
        async with asyncio.timeout(600):
            while await stale_rows(db):
                await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.wait_for(running, 60)
    grown = rss_mb() - warm
    counters = stats[pipeline.name]
    print(f"\n{queue.kind}: {CHANGES} changes in {time.monotonic() - started:.1f}s, "
          f"{counters.written} written, {counters.skipped} skipped; RSS +{grown:.1f} MB")
    assert await queue.dead_letters(pipeline.name) == []
    assert counters.dead_lettered == 0
    assert grown < RSS_GROWTH_MB
