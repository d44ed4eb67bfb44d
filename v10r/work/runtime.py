"""The one worker runtime: resources, names, breakers, and the way a batch goes through.

`Runtime` opens what pipelines need once (pools per database, a provider per pipeline
behind its provider's breaker, the column names `v10r apply` really used) and hands out
a `PipelineRuntime`, whose `run` is the only place a batch meets the processing core:
outages are held there (no attempt spent), a write to a column that was renamed
re-resolves the names, and a bug fails the batch retryably. The queue worker loop
(`v10r.work.worker`) and the Faust agent (`v10r.stream.batch`) are thin adapters over it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import asyncpg

from v10r.compile.names import PipelineNames, pipeline_names
from v10r.db import create_pool
from v10r.errors import PlanError, ProviderError
from v10r.ops.logs import fields
from v10r.ops.metrics import BATCH_SECONDS, PROVIDER_SECONDS, WRITE_LATENCY_SECONDS
from v10r.providers.base import Provider
from v10r.redact import mask_text, mask_url
from v10r.spec.model import Database, Pipeline
from v10r.tasks import Task
from v10r.work.breaker import (
    DATABASE_ERRORS,
    Breaker,
    Breakers,
    GuardedProvider,
    ServicePaused,
    SuspectBatch,
)
from v10r.work.core import BatchOutcome, BatchProcessor, Status, TaskOutcome
from v10r.work.settle import Counters

log = logging.getLogger("v10r.work")

@dataclass
class PipelineRuntime:
    """One pipeline's processor, breakers and counters."""

    processor: BatchProcessor
    provider: GuardedProvider
    database: Breaker
    schema: Breaker
    counters: Counters = field(default_factory=Counters)

    @classmethod
    def build(cls, pipeline: Pipeline, names: PipelineNames, read_pool: asyncpg.Pool,
              write_pool: asyncpg.Pool, provider: Provider, *, breakers: Breakers | None = None,
              counters: Counters | None = None) -> PipelineRuntime:
        """The processor over `provider` behind its breaker, with the pipeline's breakers."""
        breakers = breakers if breakers is not None else Breakers()
        name = _provider_name(provider)
        guarded = GuardedProvider(TimedProvider(provider, name), breakers.get("provider", name))
        return cls(BatchProcessor(pipeline, names, read_pool, write_pool, guarded), guarded,
                   breakers.get("database", pipeline.database.name, _identity(pipeline)),
                   breakers.get("pipeline", pipeline.name), counters or Counters())

    @property
    def pipeline(self) -> Pipeline:
        return self.processor.pipeline

    @property
    def breakers(self) -> tuple[Breaker, ...]:
        return (self.provider.breaker, self.database, self.schema)

    async def ready(self, stop: asyncio.Event) -> None:
        """Until no breaker of this pipeline is open: consumption pauses meanwhile."""
        for breaker in self.breakers:
            await breaker.until_closed(stop)

    async def run(self, tasks: Sequence[Task], stop: asyncio.Event) -> BatchOutcome | None:
        """The core's outcome, held through outages; None if stopped while held.

        A bug fails the whole batch, retryable, so nothing is ever silently dropped.
        """
        conflicts, started = 0, time.monotonic()
        while True:
            try:
                outcome = await self.processor.process(tasks)
            except asyncpg.TransactionRollbackError:  # a deadlock or serialization conflict
                conflicts += 1  # with another writer of the same rows: try again shortly
                await asyncio.sleep(self.database.backoff.delay(conflicts))
                continue
            except ServicePaused as exc:
                breaker, probe = exc.breaker, self.provider.probe
            except SuspectBatch as exc:
                return await self._isolate(tasks, stop, exc.error)
            except PlanError as exc:
                if await self._renamed():
                    continue
                breaker, probe = self.schema, None
                breaker.open("schema", exc)
            except DATABASE_ERRORS as exc:
                breaker, probe = self.database, None
                breaker.open("outage", exc)
            except Exception as exc:  # noqa: BLE001 - a bug: fail the batch, keep the loop
                return self._bug(tasks, exc)
            else:
                self.database.close()
                self.schema.close()
                report_batch(self.pipeline, tasks, outcome, time.monotonic() - started)
                return outcome
            self.counters.errors += 1
            if not await breaker.wait(stop, probe):
                return None

    async def _isolate(self, tasks: Sequence[Task], stop: asyncio.Event,
                       error: ProviderError) -> BatchOutcome | None:
        """Halve a suspect batch until the tasks that break the provider stand alone;
        those fail (retryable, spending an attempt), the others are written."""
        if len(tasks) == 1:
            text = error.message if not error.hint else f"{error.message} (hint: {error.hint})"
            return BatchOutcome([TaskOutcome(Status.FAILED, text, retryable=True)])
        middle, parts = len(tasks) // 2, []
        for part in (tasks[:middle], tasks[middle:]):
            self.provider.breaker.recovering = True  # each half is judged on its own
            outcome = await self.run(part, stop)
            if outcome is None:
                return None
            parts.append(outcome)
        return BatchOutcome(parts[0].outcomes + parts[1].outcomes,
                            parts[0].embedded + parts[1].embedded)

    async def _renamed(self) -> bool:
        """Re-read the applied names; True when they changed (a rename or a cut-over)."""
        processor = self.processor
        try:
            names = await resolve_names(processor.read_pool, processor.pipeline)
        except DATABASE_ERRORS:
            return False
        if names == processor.names:
            return False
        log.warning("pipeline %s: its columns are now %s; writing there", processor.pipeline.name,
                    names.embedding)
        self.processor = BatchProcessor(processor.pipeline, names, processor.read_pool,
                                        processor.write_pool, self.provider)
        return True

    def _bug(self, tasks: Sequence[Task], exc: BaseException) -> BatchOutcome:
        log.exception("pipeline %s: unexpected error processing %d task(s)",
                      self.pipeline.name, len(tasks))
        message = mask_text(f"unexpected error: {type(exc).__name__}: {exc}")
        return BatchOutcome([TaskOutcome(Status.FAILED, message, retryable=True)
                             for _ in tasks])


class TimedProvider:
    """A provider whose every embedding call is timed into the latency histogram."""

    def __init__(self, inner: Provider, label: str) -> None:
        self.inner, self.label = inner, label

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def embed(self, texts: Sequence[str], *, priority: str = "live") -> object:
        started = time.monotonic()
        try:
            return await self.inner.embed(texts, priority=priority)  # type: ignore[arg-type]
        finally:
            PROVIDER_SECONDS.labels(self.label).observe(time.monotonic() - started)


def report_batch(pipeline: Pipeline, tasks: Sequence[Task], outcome: BatchOutcome,
                 seconds: float) -> None:
    """One info line per batch (with JSON fields) and its duration in the histogram."""
    BATCH_SECONDS.labels(pipeline.name).observe(seconds)
    written, failed = outcome.count(Status.WRITTEN), sum(not o.done for o in outcome.outcomes)
    log.info("pipeline %s: batch of %d row(s) on %s: %d written, %d skipped, %d failed "
             "in %.0f ms", pipeline.name, len(tasks), pipeline.source.table, written,
             len(tasks) - written - failed, failed, seconds * 1000,
             extra=fields(pipeline=pipeline.name, table=pipeline.source.table,
                          batch_size=len(tasks), written=written,
                          skipped=len(tasks) - written - failed, failed=failed,
                          duration_ms=round(seconds * 1000, 1), queue=pipeline.queue.kind))


def observe_write_latency(pipeline: str, outcome: BatchOutcome,
                          enqueued_at: Sequence[float | None]) -> None:
    """Enqueue-to-write time of each written task whose broker stamped it."""
    now, histogram = time.time(), WRITE_LATENCY_SECONDS.labels(pipeline)  # once a batch
    for result, at in zip(outcome.outcomes, enqueued_at, strict=False):
        if at is not None and result.status is Status.WRITTEN:
            histogram.observe(max(0.0, now - at))


class Runtime:
    """Pools, providers and breakers of a process, closed with it."""

    def __init__(self, stack: AsyncExitStack, *, pool_size: int = 2,
                 breakers: Breakers | None = None) -> None:
        self._stack = stack
        self._pool_size = pool_size
        self._pools: dict[tuple[str, str], asyncpg.Pool] = {}
        self.breakers = breakers or Breakers()
        self.pipelines: dict[str, PipelineRuntime] = {}

    async def open(self, pipeline: Pipeline, *, provider: Provider | None = None,
                   names: PipelineNames | None = None,
                   counters: Counters | None = None) -> PipelineRuntime:
        """The pipeline's runtime; raises `ConnectionFailed`/`ProviderError`/`EnvError`
        when its database or provider cannot be set up."""
        read_pool, write_pool = await self._pools_for(pipeline)
        names = names or await resolve_names(read_pool, pipeline)
        await check_grants(pipeline, names, read_pool, write_pool)
        runtime = PipelineRuntime.build(
            pipeline, names, read_pool, write_pool,
            provider or self._provider(pipeline), breakers=self.breakers, counters=counters)
        self.pipelines[pipeline.name] = runtime
        return runtime

    def _provider(self, pipeline: Pipeline) -> Provider:
        from v10r.providers.factory import create_provider

        provider = create_provider(pipeline.embedding, pipeline=pipeline.name)
        self._stack.push_async_callback(provider.aclose)
        return provider

    async def _pools_for(self, pipeline: Pipeline) -> tuple[asyncpg.Pool, asyncpg.Pool]:
        database = pipeline.database
        write = await self._pool(database, "write", pipeline.name)
        if not database.read_dsn:
            return write, write
        return await self._pool(database, "read", pipeline.name), write

    async def _pool(self, database: Database, role: str, pipeline: str) -> asyncpg.Pool:
        raw = database.read_dsn if role == "read" else database.dsn
        key = (role, f"{raw}|{database.sslmode}|{database.sslrootcert}")
        if key not in self._pools:
            pool = await create_pool(database, role, pipeline=pipeline,  # type: ignore[arg-type]
                                     min_size=1, max_size=max(2, self._pool_size))
            self._stack.push_async_callback(_close_pool, pool)
            self._pools[key] = pool
        return self._pools[key]


def _identity(pipeline: Pipeline) -> str:
    """Databases are told apart by where they are, not by their logical name alone."""
    database = pipeline.database
    return f"{database.dsn}|{database.read_dsn or ''}"


def _provider_name(provider: Provider) -> str:
    where = getattr(provider, "base_url", "")
    return f"{provider.name} {mask_url(where)}".strip() if where else provider.name


async def resolve_names(pool: asyncpg.Pool, pipeline: Pipeline) -> PipelineNames:
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


async def check_grants(pipeline: Pipeline, names: PipelineNames, read_pool: asyncpg.Pool,
                       write_pool: asyncpg.Pool) -> None:
    """A role without the GRANTs a worker needs is refused at start with the GRANT to run
    (`PlanError`), instead of failing every batch row by row."""
    from v10r.reconcile import privileges

    async with write_pool.acquire() as conn:
        await privileges.require_writer(conn, names, pipeline=pipeline.name)
    async with read_pool.acquire() as conn:
        await privileges.require_reader(conn, names,
                                        [c.column for c in pipeline.source.filter],
                                        pipeline=pipeline.name)


async def _close_pool(pool: asyncpg.Pool) -> None:
    try:
        await asyncio.wait_for(pool.close(), 10)
    except TimeoutError:
        pool.terminate()
