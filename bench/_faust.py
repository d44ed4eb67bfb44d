"""The Faust path for the benchmarks: the listener in this process, N `faust -A v10r
worker` processes beside it, and an OpenAI-compatible HTTP server as the provider.

The server (`tests/services/openai_server.py`) runs in a process of its own, as a real
provider does: in a thread of this process it would share the listener's interpreter
lock, and the listener would wait on the server's vector making. It answers at once
(or after `delay_s`); the workers are the real CLI, started the way the end-to-end
tests start them. Rows written are counted in the database, since the workers'
counters live in other processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _harness as h
import asyncpg
import psutil

from v10r.listen.listener import Listener, ListenerSettings
from v10r.spec.identifiers import quote_ident

sys.path.append(str(Path(__file__).resolve().parents[1]))  # the tests' helpers and server

from tests.integration.faust.helpers import FaustWorker, kafka_spec, worker_env, write_spec

POLL_S = 0.01




@contextlib.contextmanager
def http_provider(delay_s: float = 0.0) -> Iterator[h.HttpServer]:
    """The OpenAI-compatible server in its own process, answering base64 after `delay_s`."""
    with h.http_server("http-base64", delay_s) as server:
        yield server


@dataclass
class FaustStack:
    """A running Faust pipeline: its table, and the worker processes (for CPU use)."""

    dsn: str
    table: str
    workers: list[FaustWorker] = field(default_factory=list)

    async def since(self, conn: asyncpg.Connection) -> Any:
        """The database's clock: rows written after it are counted by `wait_written`."""
        return await conn.fetchval("SELECT clock_timestamp()")

    async def wait_written(self, conn: asyncpg.Connection, since: Any, count: int,
                           timeout: float = h.WAIT_S) -> float:
        """Poll until `count` rows carry a vector written after `since`; returns the time."""
        query = (f"SELECT count(*) FROM {quote_ident(self.table)} "
                 "WHERE body_embedding_at >= $1")
        deadline = time.monotonic() + timeout
        while (done := await conn.fetchval(query, since)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {done} of {count} rows embedded after {timeout:.0f} s")
            await asyncio.sleep(POLL_S)
        return time.perf_counter()

    def cpu_seconds(self) -> list[float]:
        """CPU seconds used so far by each worker process."""
        used = []
        for worker in self.workers:
            assert worker.process is not None
            times = psutil.Process(worker.process.pid).cpu_times()
            used.append(times.user + times.system)
        return used


@contextlib.asynccontextmanager
async def faust_pipeline(svc: h.Services, server: h.HttpServer, workers: int,
                         **embedding: Any) -> AsyncIterator[FaustStack]:
    """Apply a Kafka pipeline, run the listener here and `workers` Faust processes."""
    assert svc.kafka is not None, "the Faust cases need the Kafka broker"
    table = h.unique("faust")
    await h.create_table(svc.dsn, table)
    workdir = Path(tempfile.mkdtemp(prefix="v10r-bench-faust-"))
    spec = kafka_spec(table, table, server.url)
    spec["embedding"] |= {"max_retries": 5, "timeout_s": 30, **embedding}
    pipeline = write_spec(workdir / "specs", spec, svc.dsn)
    target = await h.apply(pipeline)
    queue = await h.open_queue("kafka", pipeline, svc)
    listener = Listener([target], queue, ListenerSettings(catchup=False))
    stack = FaustStack(svc.dsn, table)
    env = worker_env(workdir / "specs", svc.dsn, svc.kafka.url, h.unique("app"))
    async with h.listening(listener, stack.workers, svc, "kafka", pipeline, workdir):
        for i in range(workers):
            stack.workers.append(await asyncio.to_thread(FaustWorker(workdir / f"w{i}", env).start))
        yield stack


async def warm_up(stack: FaustStack, conn: asyncpg.Connection, row_id: int) -> None:
    """One row through the whole path: the workers have joined and fetched once."""
    since = await stack.since(conn)
    await h.insert_rows(conn, stack.table, range(row_id, row_id + 1))
    await stack.wait_written(conn, since, 1, timeout=120)
