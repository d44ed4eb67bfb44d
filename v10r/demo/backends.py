"""Where the demo's tasks travel: in-process (memory queue + workers in this process), or
the production path on one machine (an embedded Kafka-protocol broker and a real
`faust -A v10r worker` process)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

from rich.console import Console

from v10r.compile.names import PipelineNames
from v10r.embedded.process import terminate
from v10r.errors import ConnectionFailed
from v10r.providers.base import Provider
from v10r.queues.base import Queue
from v10r.spec.model import Pipeline

FAUST_READY = "[^Worker]: Ready"
FAUST_START_TIMEOUT_S = 90.0


@contextlib.asynccontextmanager
async def in_process(pipeline: Pipeline, names: PipelineNames, provider: Provider,
                     workers: int, out: Console) -> AsyncIterator[Queue]:
    from v10r.queues.memory import MemoryQueue
    from v10r.work.runner import run_workers

    queue = MemoryQueue()
    await queue.start()
    stop = asyncio.Event()
    working = asyncio.create_task(run_workers(
        [pipeline], queue, workers, stop, providers={pipeline.name: provider},
        names={pipeline.name: names}))
    out.print(f"[bold]4.[/] queue: in-process; {workers} in-process workers, "
              f"local model {pipeline.model}")
    try:
        yield queue
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await working
        await queue.close()


@contextlib.asynccontextmanager
async def kafka(pipeline: Pipeline, dsn: str, data_dir: Path, out: Console
                ) -> AsyncIterator[Queue]:
    from v10r.embedded.kafka import EmbeddedKafka
    from v10r.queues.kafka import KafkaQueue

    broker = await asyncio.to_thread(EmbeddedKafka(data_dir / "kafka").start)
    os.environ.update(broker.client_env)  # for this process's KafkaQueue and the worker
    try:
        queue = KafkaQueue(broker.bootstrap, pipelines=[pipeline.name],
                           partitions=pipeline.queue.partitions)
        await queue.start()
        try:
            worker, seconds = await asyncio.to_thread(_start_faust, broker.url, dsn, data_dir)
            out.print(f"[bold]4.[/] queue: Kafka-protocol broker at {broker.bootstrap}; "
                      f"`faust -A v10r worker` ready in {seconds:.1f} s (pid {worker.pid}, "
                      f"log {data_dir / 'faust-worker.log'})")
            try:
                yield queue
            finally:
                await asyncio.to_thread(_stop, worker)
        finally:
            await queue.close()
    finally:
        await asyncio.to_thread(broker.stop)


def _start_faust(kafka_url: str, dsn: str, data_dir: Path) -> tuple[subprocess.Popen[bytes], float]:
    faust = shutil.which("faust", path=os.path.dirname(sys.executable)) or shutil.which("faust")
    if faust is None:
        raise ConnectionFailed("the `faust` command is not installed",
                               hint="pip install 'v10r[kafka]'")
    specs = data_dir / "faust-pipelines"
    specs.mkdir(parents=True, exist_ok=True)
    (specs / "docs.yaml").write_text(
        resources.files("v10r.demo").joinpath("docs.yaml").read_text("utf-8"))
    env = {**os.environ, "V10R_PIPELINES": str(specs), "DATABASE_URL": dsn,
           "V10R_KAFKA_URL": kafka_url, "V10R_FAUST_ALL_PIPELINES": "1",
           "V10R_FAUST_SESSION_TIMEOUT_S": "6", "V10R_FAUST_HEARTBEAT_S": "1"}
    log_path = data_dir / "faust-worker.log"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        worker = subprocess.Popen([faust, "-A", "v10r", "worker", "-l", "info", "--without-web"],
                                  cwd=data_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
    while FAUST_READY not in log_path.read_text(errors="replace"):
        if worker.poll() is not None or time.monotonic() - started > FAUST_START_TIMEOUT_S:
            _stop(worker)
            raise ConnectionFailed("the Faust worker did not become ready",
                                   hint=f"see {log_path}")
        time.sleep(0.1)
    return worker, time.monotonic() - started


def _stop(worker: subprocess.Popen[bytes]) -> None:
    terminate(worker, 30.0, group=True)
