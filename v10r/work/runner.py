"""Everything a set of workers needs, built once: pools, providers, processors, loops.

`run_workers` is the one entry point for `v10r worker` and for the listener's
in-process mode; it owns the pools and providers it creates, never the queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack

import asyncpg

from v10r.compile.names import PipelineNames, pipeline_names
from v10r.db import create_pool
from v10r.providers.base import Provider
from v10r.queues.base import Queue
from v10r.spec.model import Database, Pipeline
from v10r.work.core import BatchProcessor
from v10r.work.worker import PipelineWorker, WorkerStats

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 256
CONSUME_TIMEOUT = 1.0  # also the longest a stop waits for an idle loop


async def run_workers(pipelines: Sequence[Pipeline], queue: Queue, concurrency: int,
                      stop: asyncio.Event, *, batch_size: int = DEFAULT_BATCH_SIZE,
                      providers: Mapping[str, Provider] | None = None,
                      names: Mapping[str, PipelineNames] | None = None,
                      stats: dict[str, WorkerStats] | None = None) -> dict[str, WorkerStats]:
    """Run `concurrency` consumer loops per pipeline until `stop` is set; return counters.

    `queue` must already be started, and is left open. `providers` and `names` (by
    pipeline name) override the spec's provider and the derived column names, e.g.
    with the names a collision rename gave. Pass a `stats` dict to watch the counters
    while the loops run. Raises `ConnectionFailed`/`ProviderError`/`EnvError` at start
    when a database or provider cannot be set up; later outages are waited out.
    """
    stats = stats if stats is not None else {}
    async with AsyncExitStack() as stack:
        pools = _Pools(stack)
        loops = []
        for pipeline in pipelines:
            provider = (providers or {}).get(pipeline.name) or await _provider(stack, pipeline)
            read_pool, write_pool = await pools.for_database(pipeline, concurrency)
            pipeline_stats = stats.setdefault(pipeline.name, WorkerStats(pipeline.name))
            processor = BatchProcessor(
                pipeline, (names or {}).get(pipeline.name) or await _names(read_pool, pipeline),
                read_pool, write_pool, provider)
            loops += [PipelineWorker(processor, queue, batch_size=batch_size,
                                     timeout=CONSUME_TIMEOUT, stats=pipeline_stats).run(stop)
                      for _ in range(max(1, concurrency))]
        log.info("running %d worker loop(s) for %d pipeline(s)", len(loops), len(pipelines))
        await asyncio.gather(*loops)
    return stats


async def _provider(stack: AsyncExitStack, pipeline: Pipeline) -> Provider:
    from v10r.providers.factory import create_provider

    provider = create_provider(pipeline.embedding, pipeline=pipeline.name)
    stack.push_async_callback(provider.aclose)
    return provider


async def _names(pool: asyncpg.Pool, pipeline: Pipeline) -> PipelineNames:
    """The column names `v10r apply` really used (a collision may have renamed them)."""
    try:
        from v10r.reconcile import applied_state
    except ImportError:
        return pipeline_names(pipeline)
    try:
        async with pool.acquire() as conn:
            state = (await applied_state(conn, [pipeline]))[pipeline.name]
    except asyncpg.PostgresError as exc:
        log.warning("pipeline %s: cannot read the applied state (%s); using the spec's "
                    "column names", pipeline.name, exc)
        return pipeline_names(pipeline)
    if not state.applied:
        log.warning("pipeline %s is not applied yet; its tasks wait until `v10r apply` "
                    "creates its columns", pipeline.name)
    return state.names


class _Pools:
    """One read and one write pool per database, shared by its pipelines."""

    def __init__(self, stack: AsyncExitStack) -> None:
        self._stack = stack
        self._pools: dict[tuple[str, str], asyncpg.Pool] = {}

    async def for_database(self, pipeline: Pipeline,
                           concurrency: int) -> tuple[asyncpg.Pool, asyncpg.Pool]:
        database = pipeline.database
        write = await self._pool(database, "write", pipeline.name, concurrency)
        if not database.read_dsn:
            return write, write
        return await self._pool(database, "read", pipeline.name, concurrency), write

    async def _pool(self, database: Database, role: str, pipeline: str,
                    concurrency: int) -> asyncpg.Pool:
        raw = database.read_dsn if role == "read" else database.dsn
        key = (role, f"{raw}|{database.sslmode}|{database.sslrootcert}")
        if key not in self._pools:
            pool = await create_pool(database, role, pipeline=pipeline,  # type: ignore[arg-type]
                                     min_size=1, max_size=max(2, concurrency + 1))
            self._stack.push_async_callback(_close_pool, pool)
            self._pools[key] = pool
        return self._pools[key]


async def _close_pool(pool: asyncpg.Pool) -> None:
    try:
        await asyncio.wait_for(pool.close(), 10)
    except TimeoutError:
        pool.terminate()
