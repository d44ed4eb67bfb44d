"""Shared setup of the pipeline benchmarks: services, tables, a running pipeline, baselines.

Every benchmark starts its own PostgreSQL (and Kafka broker when asked) on free ports
and stops them on exit; Redis and RabbitMQ are the machine's. A "stack" is what
`v10r listen --workers-in-process N` runs — listener and worker loops on one event loop —
with the worker counters watched in-process, so waiting for the result costs the
database nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg
import numpy as np
from pgvector.asyncpg import register_vector

from v10r.embedded.kafka import EmbeddedKafka
from v10r.embedded.postgres import EmbeddedPostgres
from v10r.listen.applied import resolve_all
from v10r.listen.listener import Listener, ListenerSettings
from v10r.listen.targets import Target
from v10r.providers.base import Provider
from v10r.providers.deterministic import DeterministicProvider, deterministic_vector
from v10r.queues.base import Queue
from v10r.reconcile import apply_pipelines
from v10r.spec.identifiers import quote_ident
from v10r.spec.model import Pipeline
from v10r.work.runner import run_workers
from v10r.work.vectors import encode_rows
from v10r.work.worker import WorkerStats

DIMENSIONS = 384
REDIS_URL = os.environ.get("V10R_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
RABBITMQ_URL = os.environ.get("V10R_BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
QUEUES = ("memory", "redis", "rabbitmq", "kafka")
WAIT_S = 300.0  # upper bound of every wait: a stuck pipeline fails the run, never hangs it


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


# ---- services -------------------------------------------------------------------------

@dataclass
class Services:
    """A running PostgreSQL 18 + pgvector, and a Kafka broker when a benchmark needs one."""

    pg: EmbeddedPostgres
    dsn: str  # a database with the vector extension
    kafka: EmbeddedKafka | None = None

    def queue_url(self, kind: str) -> str | None:
        match kind:
            case "redis":
                return REDIS_URL
            case "rabbitmq":
                return RABBITMQ_URL
            case "kafka":
                return self.kafka.url if self.kafka else None
        return None


@contextlib.asynccontextmanager
async def services(*, kafka: bool = False) -> AsyncIterator[Services]:
    """Start the services in a temporary directory; stop them and remove it on exit."""
    workdir = Path(tempfile.mkdtemp(prefix="v10r-bench-"))
    pg = EmbeddedPostgres(workdir / "pg")
    broker: EmbeddedKafka | None = None
    try:
        await asyncio.to_thread(pg.start)
        dsn = await _database(pg)
        if kafka:
            broker = EmbeddedKafka(workdir / "kafka")
            await asyncio.to_thread(broker.start)
        yield Services(pg, dsn, broker)
    finally:
        if broker is not None:
            await asyncio.to_thread(broker.stop)
        await asyncio.to_thread(pg.stop)
        shutil.rmtree(workdir, ignore_errors=True)


async def _database(pg: EmbeddedPostgres) -> str:
    name = unique("bench")
    conn = await asyncpg.connect(pg.dsn)
    try:
        await conn.execute(f"CREATE DATABASE {quote_ident(name)}")
    finally:
        await conn.close()
    conn = await asyncpg.connect(pg.dsn_for(name))
    try:
        await conn.execute("CREATE EXTENSION vector")
    finally:
        await conn.close()
    return pg.dsn_for(name)


async def server_versions(dsn: str) -> dict[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        return {"postgres": await conn.fetchval("SHOW server_version"),
                "pgvector": await conn.fetchval(
                    "SELECT extversion FROM pg_extension WHERE extname = 'vector'")}
    finally:
        await conn.close()


# ---- tables and pipelines -------------------------------------------------------------

def make_pipeline(dsn: str, table: str, queue: str, *, url: str | None = None,
                  provider: str = "custom", batch: int | None = None) -> Pipeline:
    """A pipeline on `public.<table>.body`; `custom` is replaced by an in-process provider."""
    embedding: dict[str, Any] = {"provider": provider}
    if provider == "custom":
        embedding |= {"base_url": "http://127.0.0.1:9/v1", "model": "deterministic",
                      "dimensions": DIMENSIONS}
    if batch:
        embedding["max_batch_size"] = batch
    return Pipeline.model_validate({
        "name": unique("bench"),
        "database": {"name": "bench", "dsn": dsn},
        "source": {"table": f"public.{table}", "key": "id", "columns": ["body"]},
        "embedding": embedding,
        "target": {"index": "none"},
        "queue": {"kind": queue, **({"url": url} if url else {})},
    })


async def create_table(dsn: str, table: str, rows: int = 0,
                       text: Callable[[int], str] | None = None) -> None:
    """`public.<table> (id bigint primary key, body text)`, optionally with rows 1..N."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"CREATE TABLE {quote_ident(table)} (id bigint PRIMARY KEY, body text)")
        if rows:
            await insert_rows(conn, table, range(1, rows + 1), text)
    finally:
        await conn.close()


async def insert_rows(conn: asyncpg.Connection, table: str, ids: range,
                      text: Callable[[int], str] | None = None, chunk: int = 500) -> None:
    """Insert in statements of `chunk` rows (under the bulk threshold: one NOTIFY per row)."""
    text = text or row_text
    for start in range(ids.start, ids.stop, chunk):
        part = range(start, min(start + chunk, ids.stop))
        await conn.execute(f"INSERT INTO {quote_ident(table)} (id, body) "
                           "SELECT * FROM unnest($1::bigint[], $2::text[])",
                           list(part), [text(i) for i in part])


async def update_rows(conn: asyncpg.Connection, table: str, ids: range,
                      chunk: int = 500) -> None:
    for start in range(ids.start, ids.stop, chunk):
        await conn.execute(f"UPDATE {quote_ident(table)} SET body = body || ' (edited)' "
                           "WHERE id >= $1 AND id < $2", start, min(start + chunk, ids.stop))


def row_text(i: int) -> str:
    return f"row {i}: a short product description with a few words about item {i}"


def edited(text: str) -> str:
    """What `update_rows` makes of a row's text."""
    return text + " (edited)"


async def apply(pipeline: Pipeline) -> Target:
    await apply_pipelines([pipeline])
    (target,) = await resolve_all([pipeline])
    return target


class PrecomputedProvider(DeterministicProvider):
    """The deterministic provider's vectors, computed before the clock starts.

    Isolates v10r's own overhead the way the baseline does (its vectors are precomputed
    too); a text not prepared in advance falls back to computing it.
    """

    def __init__(self, texts: Iterable[str]) -> None:
        super().__init__(DIMENSIONS)
        self.vectors = {t: deterministic_vector(t, DIMENSIONS) for t in texts}

    async def embed(self, texts: Sequence[str], *, priority: str = "live") -> np.ndarray:
        self.calls += 1
        known = self.vectors
        return np.stack([known.get(t) if t in known else deterministic_vector(t, DIMENSIONS)
                         for t in texts])


def make_provider(kind: str, texts: Iterable[str] = ()) -> Provider:
    match kind:
        case "deterministic":
            return DeterministicProvider(DIMENSIONS)
        case "precomputed":
            return PrecomputedProvider(texts)
    raise SystemExit(f"unknown provider {kind!r}; choose deterministic or precomputed")


# ---- queues ---------------------------------------------------------------------------

async def open_queue(kind: str, pipeline: Pipeline, svc: Services) -> Queue:
    """The adapter `create_queue` builds, started; memory queues are shared in-process."""
    from v10r.queues.factory import create_queue

    spec = pipeline.queue.model_copy(update={"url": svc.queue_url(kind)})
    queue = create_queue(spec, pipelines=[pipeline.name])
    await queue.start()
    return queue


async def drop_queue(kind: str, pipeline: Pipeline, svc: Services) -> None:
    """Remove what a run left on a shared broker (streams, queues, topics), through a
    fresh client so no consumer of the run sees its queue vanish."""
    if kind == "memory":
        return
    queue = await open_queue(kind, pipeline, svc)
    try:
        match queue.kind:
            case "redis" | "rabbitmq":
                await queue.drop(pipeline.name)  # type: ignore[attr-defined]
            case "kafka":
                await queue.delete_topics([pipeline.name])  # type: ignore[attr-defined]
    finally:
        await queue.close()


# ---- a running pipeline ---------------------------------------------------------------

@dataclass
class Stack:
    """Listener + worker loops of one pipeline, with the workers' live counters."""

    target: Target
    stats: dict[str, WorkerStats] = field(default_factory=dict)
    listener: Listener | None = None

    @property
    def written(self) -> int:
        stats = self.stats.get(self.target.name)
        return stats.written + stats.skipped if stats else 0

    async def wait_written(self, count: int, timeout: float = WAIT_S) -> float:
        """Poll the in-process counter until `count` rows are done; returns the time."""
        deadline = time.monotonic() + timeout
        while self.written < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.written} of {count} rows embedded "
                                   f"after {timeout:.0f} s")
            await asyncio.sleep(0.002)
        return time.perf_counter()


@contextlib.asynccontextmanager
async def running(target: Target, kind: str, svc: Services, *, workers: int,
                  provider: Provider | None = None, catchup: bool = False,
                  batch_size: int = 256) -> AsyncIterator[Stack]:
    """Run listener and `workers` loops until the body ends; the queue is dropped after."""
    pipeline = target.pipeline
    provider = provider or DeterministicProvider(DIMENSIONS)
    queue = await open_queue(kind, pipeline, svc)
    stack = Stack(target)
    stack.listener = Listener([target], queue, ListenerSettings(catchup=catchup))
    stop_listen, stop_work = asyncio.Event(), asyncio.Event()
    listen = asyncio.create_task(stack.listener.run(stop_listen))
    work = asyncio.create_task(run_workers(
        [pipeline], queue, workers, stop_work, batch_size=batch_size,
        providers={pipeline.name: provider}, names={pipeline.name: target.names},
        stats=stack.stats))
    try:
        await _ready(stack.listener, listen, work)
        yield stack
    finally:
        stop_listen.set()
        stop_work.set()
        await asyncio.wait_for(asyncio.gather(listen, work, return_exceptions=True), 60)
        await queue.close()
        await drop_queue(kind, pipeline, svc)


async def _ready(listener: Listener, *tasks: asyncio.Task[Any]) -> None:
    deadline = time.monotonic() + 60
    while not listener.listening.is_set():
        for task in tasks:
            if task.done():
                task.result()
                raise RuntimeError("the pipeline stopped before listening")
        if time.monotonic() > deadline:
            raise TimeoutError("the listener did not start listening within 60 s")
        await asyncio.sleep(0.01)


async def warm_up(stack: Stack, conn: asyncpg.Connection, table: str, row_id: int) -> None:
    """One row through the whole path: statements prepared, consumers joined."""
    before = stack.written
    await insert_rows(conn, table, range(row_id, row_id + 1))
    await stack.wait_written(before + 1, timeout=120)


# ---- baselines --------------------------------------------------------------------------

async def baseline_write(dsn: str, rows: int, chunk: int = 1000) -> float:
    """The database's own limit: rows/s of precomputed vectors written by one batched
    `UPDATE … FROM unnest` loop over one connection with the binary codec."""
    table = unique("baseline")
    await create_table(dsn, table, rows)
    columns = ("body_embedding vector(384)", "body_embedding_model text",
               "body_embedding_hash text", "body_embedding_at timestamptz")
    conn = await asyncpg.connect(dsn)
    try:
        await register_vector(conn)
        await conn.execute(f"ALTER TABLE {quote_ident(table)} "
                           + ", ".join(f"ADD COLUMN {c}" for c in columns))
        rng = np.random.default_rng(1)
        vectors = encode_rows(rng.standard_normal((rows, DIMENSIONS)).astype(np.float32))
        hashes = [f"{i:064x}" for i in range(rows)]
        statement = (f"UPDATE {quote_ident(table)} AS t SET body_embedding = u.e, "
                     "body_embedding_model = 'deterministic', body_embedding_hash = u.h, "
                     "body_embedding_at = now() FROM unnest($1::bigint[], $2::vector[], "
                     "$3::text[]) AS u(id, e, h) WHERE t.id = u.id")
        started = time.perf_counter()
        for start in range(0, rows, chunk):
            end = min(start + chunk, rows)
            await conn.execute(statement, list(range(start + 1, end + 1)),
                               vectors[start:end], hashes[start:end])
        elapsed = time.perf_counter() - started
        await conn.execute(f"DROP TABLE {quote_ident(table)}")
    finally:
        await conn.close()
    return rows / elapsed


class CpuMeter:
    """CPU seconds used by this process and by the PostgreSQL server over an interval,
    to tell "v10r is busy" from "v10r waits for the database"."""

    def __init__(self, pg: EmbeddedPostgres) -> None:
        import psutil

        pid = int((pg.data_dir / "postmaster.pid").read_text().splitlines()[0])
        self._me, self._pg = psutil.Process(), psutil.Process(pid)
        self._start = self._read()

    def _read(self) -> tuple[float, dict[int, float]]:
        import psutil

        me = self._me.cpu_times()
        server = {}
        for proc in [self._pg, *self._pg.children()]:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = proc.cpu_times()
                server[proc.pid] = times.user + times.system
        return me.user + me.system, server

    def percent(self, seconds: float) -> dict[str, float]:
        """Average CPU use since creation, in % of one core."""
        me, server = self._read()
        pg = sum(v - self._start[1].get(pid, 0.0) for pid, v in server.items())
        return {"v10r_cpu_pct": round((me - self._start[0]) / seconds * 100, 1),
                "postgres_cpu_pct": round(pg / seconds * 100, 1)}


# ---- reporting --------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def machine() -> dict[str, Any]:
    import platform

    import psutil

    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpus": os.cpu_count(), "cpu_model": model,
            "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def base_parser(doc: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny workload (smoke test)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def parse_list(text: str, allowed: tuple[str, ...] | None = None) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if allowed is not None and (bad := [i for i in items if i not in allowed]):
        raise SystemExit(f"unknown value(s) {', '.join(bad)}; choose from {', '.join(allowed)}")
    return items


def emit(report: Mapping[str, Any], as_json: bool, render: Callable[[Mapping[str, Any]], None]) -> None:
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        render(report)


def quiet_logs() -> None:
    """Benchmarks print one report; v10r's info lines would interleave with it."""
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
