"""The whole live path in one test: trigger → real listener → memory queue → worker →
real OpenAI-compatible HTTP server → guarded write, on the real PostgreSQL+pgvector."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import numpy as np

from tests.integration.listen.helpers import fast_settings, running, wait_until
from tests.services.openai_server import OpenAIServer
from v10r.db import create_pool
from v10r.listen.catchup import scan_target
from v10r.listen.listener import Listener
from v10r.listen.targets import Target
from v10r.providers.deterministic import deterministic_vector
from v10r.providers.factory import create_provider
from v10r.providers.retry import Backoff
from v10r.queues.memory import MemoryQueue
from v10r.reconcile import apply_pipelines
from v10r.spec.model import Pipeline
from v10r.work.runtime import PipelineRuntime
from v10r.work.worker import PipelineWorker

DIMENSIONS = 8


def flow_pipeline(dsn: str, server: OpenAIServer, table: str, key: Any = "id",
                  **sections: Any) -> Pipeline:
    return Pipeline.model_validate({
        "name": f"f_{uuid.uuid4().hex[:10]}",
        "database": {"name": "test", "dsn": dsn},
        "source": {"table": f"public.{table}", "key": key, "columns": ["body"]},
        "embedding": {"provider": "custom", "base_url": server.url, "model": "test-model",
                      "dimensions": DIMENSIONS, "max_retries": 0, "timeout_s": 5},
        "target": {"index": "none", **sections.pop("target", {})},
        "queue": {"kind": "memory", "dedup_window_ms": 0, "max_attempts": 2},
        **sections,
    })


@dataclass
class Flow:
    pipeline: Pipeline
    listener: Listener
    worker: PipelineWorker
    queue: MemoryQueue

    @property
    def target(self) -> Target:
        return Target.of(self.pipeline)

    async def written(self, conn: asyncpg.Connection, count: int) -> None:
        """Wait until `count` rows carry a vector (or the worker gives up on one)."""
        table = self.target.names.qualified_table

        async def check() -> bool:
            n = await conn.fetchval(f"SELECT count(*) FROM {table} "
                                    "WHERE body_embedding IS NOT NULL")
            return n >= count

        deadline = asyncio.get_running_loop().time() + 30
        while not await check():
            assert asyncio.get_running_loop().time() < deadline, "vectors never written"
            await asyncio.sleep(0.02)

    async def stale(self, conn: asyncpg.Connection) -> int:
        """What a catch-up scan would enqueue now."""
        return await scan_target(conn, self.target, MemoryQueue())


@contextlib.asynccontextmanager
async def flowing(pipeline: Pipeline, *, catchup: bool = False) -> AsyncIterator[Flow]:
    await apply_pipelines([pipeline])
    queue = MemoryQueue()
    target = Target.of(pipeline)
    listener = Listener([target], queue, fast_settings(catchup=catchup, catchup_interval_s=None))
    pool = await create_pool(pipeline.database, max_size=4)
    provider = create_provider(pipeline.embedding, pipeline=pipeline.name)
    runtime = PipelineRuntime.build(pipeline, target.names, pool, pool, provider)
    worker = PipelineWorker(runtime, queue, timeout=0.05, backoff=Backoff(base_s=0.01, cap_s=0.05))
    stop = asyncio.Event()
    try:
        async with running(listener):
            work = asyncio.create_task(worker.run(stop))
            try:
                yield Flow(pipeline, listener, worker, queue)
                await wait_until(lambda: listener.idle)
            finally:
                stop.set()
                await asyncio.wait_for(work, 10)
    finally:
        await provider.aclose()
        await asyncio.wait_for(pool.close(), 10)


def assert_vector(stored: Any, text: str) -> None:
    assert stored is not None, f"no vector for {text!r}"
    np.testing.assert_allclose(stored.to_numpy(), deterministic_vector(text, DIMENSIONS),
                               rtol=1e-3, atol=1e-3)
