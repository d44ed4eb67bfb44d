"""The Faust path for the benchmarks: the listener in this process, N `faust -A v10r
worker` processes beside it, and an OpenAI-compatible HTTP server as the provider.

The server (`tests/services/openai_server.py`) runs in a process of its own, as a real
provider does: in a thread of this process it would share the listener's interpreter
lock, and the listener would wait on the server's vector making. It answers at once
(or after `delay_s`); the workers are the real CLI, started the way the end-to-end
tests start them, each serving /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _harness as h

from v10r.listen.listener import Listener, ListenerSettings

sys.path.append(str(Path(__file__).resolve().parents[1]))  # the tests' helpers and server

from tests.integration.faust.helpers import FaustWorker, kafka_spec, worker_env, write_spec


@contextlib.contextmanager
def http_provider(delay_s: float = 0.0) -> Iterator[h.HttpServer]:
    """The OpenAI-compatible server in its own process, answering base64 after `delay_s`."""
    with h.http_server("http-base64", delay_s) as server:
        yield server


@dataclass
class FaustStack:
    """A running Faust pipeline: its table, and the worker processes with their /metrics
    ports. Measured like `h.WorkerProcesses`: rows done are the workers' own counts of
    vectors written (`v10r_enqueue_to_write_seconds`, per process; the progress counters
    of their /metrics are the Faust table's view, shared between workers)."""

    dsn: str
    table: str
    workers: list[FaustWorker] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)

    async def processed(self) -> int:
        return sum([await h.scrape_counter(port, WRITTEN) for port in self.ports])

    async def wait_written(self, count: int, timeout: float = h.WAIT_S) -> float:
        return await h.wait_counted(self, count, timeout)

    def pids(self) -> dict[str, int]:
        return {f"worker{i + 1}": w.process.pid for i, w in enumerate(self.workers)
                if w.process is not None}

    def exited(self) -> str | None:
        """A worker process that exited, with the end of its log; None while all run."""
        return next((f"worker{i + 1} exited: {w.log()[-2000:]}"
                     for i, w in enumerate(self.workers)
                     if w.process is not None and w.process.poll() is not None), None)


WRITTEN = b"v10r_enqueue_to_write_seconds_count"


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
            stack.ports.append(h.free_port())
            worker = FaustWorker(workdir / f"w{i}", env | {"V10R_METRICS_PORT":
                                                           str(stack.ports[-1])})
            stack.workers.append(await asyncio.to_thread(worker.start))
        yield stack
