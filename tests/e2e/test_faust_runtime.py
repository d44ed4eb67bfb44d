"""The Faust agents run on the same worker runtime as `v10r worker`: applied column names
(a collision rename), outages held without dead letters, rejected credentials paused,
and unreadable messages dead-lettered, with a real `faust -A v10r worker` process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest
from aiokafka import AIOKafkaProducer

from tests.fixtures.queues import kafka_broker  # noqa: F401
from tests.integration.faust.helpers import (
    FaustWorker,
    kafka_spec,
    wait_for,
    worker_env,
    write_spec,
)
from tests.integration.work.conftest import TcpProxy
from tests.services.openai_server import OpenAIServer, Reply
from v10r.embedded.kafka import EmbeddedKafka
from v10r.providers.deterministic import deterministic_vector
from v10r.queues.kafka import KafkaQueue, task_topic
from v10r.reconcile import apply_pipelines
from v10r.spec.model import Pipeline
from v10r.tasks import Task

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

OUTAGE_S = float(os.environ.get("V10R_TEST_OUTAGE_S", "20"))
WAIT_S = 90.0


@dataclass
class Run:
    name: str
    db: asyncpg.Connection
    queue: KafkaQueue
    server: OpenAIServer
    proxy: TcpProxy
    dsn: str
    specs: Path
    env: dict[str, str]

    def pipeline(self, **target: Any) -> Pipeline:
        spec = kafka_spec(self.name, self.name, f"http://127.0.0.1:{self.proxy.port}/v1")
        spec["target"].update(target)
        spec["queue"]["max_attempts"] = 2  # one spent attempt would show at once
        return write_spec(self.specs, spec, self.dsn)

    def worker(self) -> FaustWorker:
        return FaustWorker(self.specs.parent / "run", self.env).start()

    async def publish(self, pipeline: Pipeline, keys: range) -> None:
        await self.queue.publish(self.name, [
            Task(pipeline=self.name, database="test", table=f"public.{self.name}", id=k,
                 text_column="body", embedding_column="body_embedding") for k in keys])

    async def stale(self, column: str = "body_embedding") -> list[int]:
        rows = await self.db.fetch(f"SELECT id, body, {column}::real[] AS v FROM {self.name}")
        return [r["id"] for r in rows if r["v"] is None or not np.allclose(
            np.array(r["v"], dtype=np.float32), deterministic_vector(r["body"], 384), atol=1e-6)]


@pytest.fixture
async def run(pg_dsn: str, kafka_broker: EmbeddedKafka, tmp_path: Path,  # noqa: F811
              ) -> AsyncIterator[Run]:
    with OpenAIServer() as server:
        async with _run(pg_dsn, kafka_broker, server, tmp_path) as made:
            yield made


@contextlib.asynccontextmanager
async def _run(pg_dsn: str, kafka_broker: EmbeddedKafka, server: OpenAIServer,  # noqa: F811
               tmp_path: Path) -> AsyncIterator[Run]:
    name = f"r_{uuid.uuid4().hex[:10]}"
    db = await asyncpg.connect(pg_dsn)
    await db.execute(f"CREATE TABLE public.{name} (id bigint PRIMARY KEY, body text)")
    proxy = await TcpProxy("127.0.0.1", server.port).start()
    queue = KafkaQueue(kafka_broker.bootstrap, pipelines=[name], partitions=4)
    await queue.start()
    env = worker_env(tmp_path / "specs", pg_dsn, kafka_broker.url, f"v10r-{name}")
    try:
        yield Run(name, db, queue, server, proxy, pg_dsn, tmp_path / "specs", env)
    finally:
        await proxy.cut()
        await queue.close()
        await queue.delete_topics([name])
        await db.close()


async def insert(run: Run, keys: range, text: str = "document number {}") -> None:
    await run.db.executemany(f"INSERT INTO {run.name} (id, body) VALUES ($1, $2) "
                             "ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                             [(k, text.format(k)) for k in keys])


def none_stale(run: Run, column: str = "body_embedding"):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return not await run.stale(column)
    return check


async def test_a_renamed_column_pipeline_is_written_where_apply_put_it(run: Run) -> None:
    await run.db.execute(f"ALTER TABLE {run.name} ADD COLUMN body_embedding text")
    pipeline = run.pipeline(on_collision="rename")
    await apply_pipelines([pipeline])
    await insert(run, range(20))
    await run.publish(pipeline, range(20))
    worker = run.worker()
    try:
        await wait_for(none_stale(run, "body_embedding_v10r"), WAIT_S, "renamed vectors", worker)
    finally:
        worker.stop()
    assert await run.db.fetchval(f"SELECT count(body_embedding) FROM {run.name}") == 0
    assert await run.queue.dead_letters(run.name) == []
    assert "does not exist" not in worker.log()


async def test_a_provider_outage_is_ridden_out_with_no_dead_letters(run: Run) -> None:
    await ride_out(run, OUTAGE_S)


@pytest.mark.slow
async def test_a_90_second_provider_outage_is_ridden_out_with_no_dead_letters(run: Run) -> None:
    await ride_out(run, 90.0)


async def ride_out(run: Run, outage_s: float) -> None:
    pipeline = run.pipeline()
    await apply_pipelines([pipeline])
    await insert(run, range(30))
    await run.publish(pipeline, range(30))
    worker = run.worker()
    try:
        await wait_for(none_stale(run), WAIT_S, "the first vectors", worker)
        await run.proxy.cut()
        await insert(run, range(40), "edited document {}")
        await run.publish(pipeline, range(40))
        await wait_for(lambda: _logged(worker, "paused: provider unreachable since"), WAIT_S,
                       "the pause", worker)
        await asyncio.sleep(outage_s)
        assert await run.queue.dead_letters(run.name) == []
        await run.proxy.start()
        await wait_for(none_stale(run), 30, "every row current after recovery", worker)
    finally:
        worker.stop()
    assert await run.queue.dead_letters(run.name) == []
    assert worker.log().count("paused: provider unreachable since") == 1
    assert "resumed: provider" in worker.log() and "Traceback" not in worker.log()


async def test_rejected_credentials_pause_and_unreadable_messages_are_dead_lettered(
        run: Run) -> None:
    pipeline = run.pipeline()
    await apply_pipelines([pipeline])
    await insert(run, range(5))
    run.server.always = Reply.unauthorized()
    foreign = [b'{"v": 3, "pipeline": "x"}', b"{oops", b'{"v": 1}']
    producer = AIOKafkaProducer(bootstrap_servers=run.queue.bootstrap)
    await producer.start()
    try:
        for body in foreign:
            await producer.send_and_wait(task_topic(run.name), body)
    finally:
        await producer.stop()
    worker = run.worker()
    try:
        async def three_dead() -> bool:
            return len(await run.queue.dead_letters(run.name)) >= 3
        await wait_for(three_dead, WAIT_S, "the unreadable messages' dead letters", worker)
        # A paused batch holds its partitions (Kafka keeps order): tasks come after the
        # unreadable messages so that which of them share a batch does not matter.
        await run.publish(pipeline, range(5))
        await wait_for(lambda: _logged(worker, "rejected the credentials"), WAIT_S,
                       "the loud pause", worker)
        assert len(await run.queue.dead_letters(run.name)) == 3  # the tasks are held, not lost
        run.server.always = None  # the key is accepted again
        await wait_for(none_stale(run), WAIT_S, "every row after the pause", worker)
    finally:
        worker.stop()
    letters = await run.queue.dead_letters(run.name)
    assert sorted(d.raw for d in letters) == sorted(foreign)
    assert all(d.task is None and d.error for d in letters)
    assert "version 3" in " ".join(d.error for d in letters)


async def _logged(worker: FaustWorker, text: str) -> bool:
    return text in worker.log()
