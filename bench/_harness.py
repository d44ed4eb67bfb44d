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
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg
import numpy as np
import psutil
from pgvector.asyncpg import register_vector

from v10r.embedded.kafka import EmbeddedKafka
from v10r.embedded.postgres import EmbeddedPostgres
from v10r.embedded.process import free_port
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
HTTP_PROVIDERS = {"http-base64": "yes", "http-float": "ignore"}  # the server's base64_support
MB = 2**20
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
                  provider: str = "custom", batch: int | None = None,
                  base_url: str | None = None) -> Pipeline:
    """A pipeline on `public.<table>.body`; `custom` is replaced by an in-process provider
    unless `base_url` names a real OpenAI-compatible server."""
    return Pipeline.model_validate(pipeline_spec(dsn, table, queue, url=url, provider=provider,
                                                 batch=batch, base_url=base_url))


def pipeline_spec(dsn: str, table: str, queue: str, *, url: str | None = None,
                  provider: str = "custom", batch: int | None = None,
                  base_url: str | None = None) -> dict[str, Any]:
    """The spec of `make_pipeline`, as a `v10r worker` process reads it from a file."""
    embedding: dict[str, Any] = {"provider": provider}
    if provider == "custom":
        embedding |= {"base_url": base_url or "http://127.0.0.1:9/v1",
                      "model": "test-model" if base_url else "deterministic",
                      "dimensions": DIMENSIONS}
    if batch:
        embedding["max_batch_size"] = batch
    return {
        "version": 1,
        "name": unique("bench"),
        "database": {"name": "bench", "dsn": dsn},
        "source": {"table": f"public.{table}", "key": "id", "columns": ["body"]},
        "embedding": embedding,
        "target": {"index": "none"},
        "queue": {"kind": queue, **({"url": url} if url else {})},
    }


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

class Measured(Protocol):
    """What a case measures through: rows done so far, a wait for a count of them, and
    the processes beside this one whose CPU counts."""

    async def processed(self) -> int: ...

    async def wait_written(self, count: int, timeout: float = ...) -> float: ...

    def pids(self) -> dict[str, int]: ...


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

    async def processed(self) -> int:
        return self.written

    def pids(self) -> dict[str, int]:
        """Worker processes (none: the loops run in this process)."""
        return {}

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


async def warm_up(stack: Measured, conn: asyncpg.Connection, table: str, row_id: int) -> None:
    """One row through the whole path: statements prepared, consumers joined."""
    before = await stack.processed()
    await insert_rows(conn, table, range(row_id, row_id + 1))
    await stack.wait_written(before + 1, timeout=120)


# ---- processes: the provider server, `v10r worker` -----------------------------------

SERVER = """\
import sys
from tests.services.openai_server import OpenAIServer, Reply
with OpenAIServer(base64_support=sys.argv[1]) as server:
    if float(sys.argv[2]):
        server.always = Reply(delay_s=float(sys.argv[2]))
    print(server.url, flush=True)
    sys.stdin.read()  # until the benchmark closes it
"""


BROKER_PROCESSES = {"redis": "redis-server", "rabbitmq": "beam.smp"}


def broker_pids(kind: str, svc: Services) -> dict[str, int]:
    """The queue's server process, so that its CPU per row is counted like the others':
    the embedded Kafka broker, or the machine's Redis or RabbitMQ (none for memory)."""
    if kind in ("kafka", "faust") and svc.kafka is not None and svc.kafka.process is not None:
        return {"broker": svc.kafka.process.pid}
    name = BROKER_PROCESSES.get(kind)
    for proc in psutil.process_iter(["name"]) if name else ():
        if proc.info["name"] == name:
            return {"broker": proc.pid}
    return {}


@dataclass
class HttpServer:
    """The OpenAI-compatible test server (`tests/services/openai_server.py`) in its own
    process: its JSON encoding neither shares v10r's GIL nor counts as v10r's CPU."""

    process: subprocess.Popen[str]
    url: str

    @property
    def pid(self) -> int:
        return self.process.pid


@contextlib.contextmanager
def http_server(provider: str, delay_s: float = 0.0) -> Iterator[HttpServer]:
    """`http-base64` answers base64 as asked; `http-float` ignores it and sends float
    lists (the provider then stops asking for base64)."""
    support = HTTP_PROVIDERS[provider]
    process = subprocess.Popen([sys.executable, "-c", SERVER, support, str(delay_s)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"the provider server did not start (exit {process.poll()})")
        yield HttpServer(process, url)
    finally:
        with contextlib.suppress(BrokenPipeError):
            process.communicate(timeout=30)


def spec_provider(pipeline: Pipeline) -> Provider:
    """The provider `v10r worker` builds from the spec (one pooled HTTP client)."""
    from v10r.providers.factory import create_provider

    return create_provider(pipeline.embedding, pipeline=pipeline.name)


@dataclass
class Watched:
    """A CLI subprocess with its log file and RSS samples (MB)."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    samples: list[float] = field(default_factory=list)

    def sample(self) -> None:
        try:
            self.samples.append(psutil.Process(self.process.pid).memory_info().rss / MB)
        except psutil.NoSuchProcess:
            pass

    async def wait_for(self, mark: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while mark not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} not ready after {timeout:.0f} s")
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def launch(name: str, argv: list[str], env: dict[str, str], workdir: Path) -> Watched:
    log = workdir / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "v10r", *argv], env=env, cwd=ROOT,
                                   stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    return Watched(name, process, log)


@dataclass
class WorkerProcesses:
    """Listener in this process, `v10r worker` processes beside it (one loop each), as
    deployed; rows done are read from each worker's /metrics counters."""

    target: Target
    workers: list[Watched] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    listener: Listener | None = None

    async def processed(self) -> int:
        return sum([await scrape_counter(port, PROCESSED) for port in self.ports])

    async def wait_written(self, count: int, timeout: float = WAIT_S) -> float:
        return await wait_counted(self, count, timeout)

    def pids(self) -> dict[str, int]:
        return {w.name: w.process.pid for w in self.workers}

    def exited(self) -> str | None:
        """A worker process that exited, with the end of its log; None while all run."""
        return next((f"{w.name} exited: {w.log.read_text(errors='replace')[-2000:]}"
                     for w in self.workers if w.process.poll() is not None), None)


PROCESSED = b"v10r_worker_processed_total"  # rows done, written or skipped
SCRAPE_S = 0.05


class WorkerProcessStack(Measured, Protocol):
    def exited(self) -> str | None: ...


async def wait_counted(stack: WorkerProcessStack, count: int,
                       timeout: float = WAIT_S) -> float:
    """Poll `stack.processed()` every 50 ms (each poll costs the workers a scrape) until
    `count` rows are done, failing early when a worker process exits; returns the time."""
    deadline = time.monotonic() + timeout
    while (done := await stack.processed()) < count:
        if (exited := stack.exited()) is not None:
            raise RuntimeError(exited)
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {done} of {count} rows embedded after {timeout:.0f} s")
        await asyncio.sleep(SCRAPE_S)
    return time.perf_counter()


async def scrape_sizes(stack: Measured) -> dict[str, int]:
    """Batches so far, summed over the worker processes' /metrics (none when the
    workers run in this process)."""
    ports = getattr(stack, "ports", [])
    return {"batch": sum([await scrape_counter(p, BATCHES) for p in ports])}


BATCHES = b"v10r_batch_duration_seconds_count"


async def scrape_counter(port: int, name: bytes) -> int:
    """The sum of a counter's series on one worker's /metrics, over a bare socket (an
    HTTP client per poll would cost this process more than the listener does)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")
        body = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    prefix = name + b"{"
    return sum(int(float(line.rsplit(b" ", 1)[1])) for line in body.splitlines()
               if line.startswith(prefix))


@contextlib.asynccontextmanager
async def worker_processes(target: Target, spec: Mapping[str, Any], svc: Services, *,
                           workers: int) -> AsyncIterator[WorkerProcesses]:
    """Run the listener here and `workers` `v10r worker` processes reading `spec`."""
    import yaml

    pipeline, kind = target.pipeline, spec["queue"]["kind"]
    workdir = Path(tempfile.mkdtemp(prefix="v10r-bench-workers-"))
    on_disk = {**spec, "queue": {**spec["queue"], "url": "${V10R_BENCH_QUEUE_URL}"}}
    (workdir / "pipeline.yaml").write_text(yaml.safe_dump(on_disk, sort_keys=False))
    queue = await open_queue(kind, pipeline, svc)
    stack = WorkerProcesses(target)
    stack.listener = Listener([target], queue, ListenerSettings(catchup=False))
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "V10R_BENCH_QUEUE_URL": svc.queue_url(kind) or ""}
    async with listening(stack.listener, stack.workers, svc, kind, pipeline, workdir):
        for i in range(workers):
            stack.ports.append(free_port())
            stack.workers.append(launch(f"worker{i + 1}", [
                "worker", str(workdir / "pipeline.yaml"), "--workers", "1",
                "--metrics-port", str(stack.ports[-1])], env, workdir))
        for worker in stack.workers:
            await worker.wait_for("v10r worker:")
        yield stack


@contextlib.asynccontextmanager
async def listening(listener: Listener, workers: list[Any], svc: Services, kind: str,
                    pipeline: Pipeline, workdir: Path) -> AsyncIterator[None]:
    """Run `listener` here while the body starts worker processes (appended to
    `workers`); then stop them, the listener, and remove the queue and `workdir`."""
    stop = asyncio.Event()
    listen = asyncio.create_task(listener.run(stop))
    try:
        await _ready(listener, listen)
        yield
    finally:
        for worker in workers:
            await asyncio.to_thread(worker.stop)
        stop.set()
        await asyncio.wait_for(asyncio.gather(listen, return_exceptions=True), 60)
        await listener.queue.close()
        await drop_queue(kind, pipeline, svc)
        shutil.rmtree(workdir, ignore_errors=True)


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
    """CPU seconds used by this process, by the PostgreSQL server and by any other named
    processes over an interval, to tell "v10r is busy" from "v10r waits for the database"."""

    def __init__(self, pg: EmbeddedPostgres, others: Mapping[str, int] | None = None) -> None:
        pid = int((pg.data_dir / "postmaster.pid").read_text().splitlines()[0])
        self._me, self._pg = psutil.Process(), psutil.Process(pid)
        self._others = {name: psutil.Process(p) for name, p in (others or {}).items()}
        self._start = self._read()

    def _read(self) -> tuple[float, dict[int, float], dict[str, float]]:
        server = {}
        for proc in [self._pg, *self._pg.children()]:
            with contextlib.suppress(psutil.NoSuchProcess):
                server[proc.pid] = _cpu_s(proc)
        return _cpu_s(self._me), server, {n: _cpu_s(p) for n, p in self._others.items()}

    def _used(self) -> tuple[float, float, dict[str, float]]:
        me, server, others = self._read()
        pg = sum(v - self._start[1].get(pid, 0.0) for pid, v in server.items())
        return me - self._start[0], pg, {n: v - self._start[2][n] for n, v in others.items()}

    def percent(self, seconds: float) -> dict[str, float]:
        """Average CPU use since creation, in % of one core."""
        me, pg, _ = self._used()
        return {"v10r_cpu_pct": round(me / seconds * 100, 1),
                "postgres_cpu_pct": round(pg / seconds * 100, 1)}

    def per_row(self, rows: int) -> dict[str, int]:
        """CPU µs per row since creation: this process, PostgreSQL, each other process."""
        me, pg, others = self._used()
        return {name: round(used / rows * 1e6)
                for name, used in {"bench": me, **others, "postgres": pg}.items()}


def _cpu_s(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


# ---- reporting --------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def machine() -> dict[str, Any]:
    import platform

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
