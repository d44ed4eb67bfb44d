"""The worker loop on real queues (in-process, Redis, RabbitMQ) and a real HTTP provider:
acks after the write, retries what may pass later, dead-letters what never will."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Self

import asyncpg
import numpy as np
import pytest

from tests.integration.work.conftest import (
    FakeProvider,
    create_table,
    make_pipeline,
    task_for,
    text_vector,
)
from tests.services.openai_server import OpenAIServer, Reply
from v10r.providers.deterministic import deterministic_vector
from v10r.providers.factory import create_provider
from v10r.providers.retry import Backoff
from v10r.queues.base import Queue
from v10r.queues.memory import MemoryQueue
from v10r.queues.rabbitmq import RabbitMQQueue
from v10r.queues.redis import RedisQueue
from v10r.spec.model import Pipeline
from v10r.work.breaker import Breakers
from v10r.work.runner import run_workers
from v10r.work.runtime import PipelineRuntime
from v10r.work.settle import Counters
from v10r.work.worker import PipelineWorker

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/15"
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
FAST = Backoff(base_s=0.01, cap_s=0.05)


def quick() -> Breakers:
    """Breakers that probe every few tenths of a second."""
    return Breakers(backoff=Backoff(base_s=0.05, cap_s=0.2))


def runtime(pipeline: Pipeline, names, pool, provider, **kwargs) -> PipelineRuntime:
    return PipelineRuntime.build(pipeline, names, pool, pool, provider, **kwargs)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)


async def embedded_count(db: asyncpg.Connection) -> int:
    return await db.fetchval("SELECT count(*) FROM docs WHERE body_embedding_hash IS NOT NULL")


class Running:
    """Worker loops in the background, stopped (gracefully) on exit."""

    def __init__(self, *workers: PipelineWorker) -> None:
        self.stop = asyncio.Event()
        self.tasks = [asyncio.create_task(w.run(self.stop)) for w in workers]

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        await asyncio.wait_for(asyncio.gather(*self.tasks), 10)


@pytest.fixture
def http_server() -> Iterator[OpenAIServer]:
    with OpenAIServer(dimensions=8) as server:
        yield server


@pytest.fixture(params=["memory", "redis", "rabbitmq"])
async def queue(request: pytest.FixtureRequest) -> AsyncIterator[Queue]:
    name = f"w_{uuid.uuid4().hex[:10]}"
    made: Queue
    match request.param:
        case "memory":
            made = MemoryQueue()
        case "redis":
            made = RedisQueue(REDIS_URL, pipelines=[name], dead_after=0.5)
        case _:
            made = RabbitMQQueue(RABBITMQ_URL, pipelines=[name])
    made.pipeline_name = name  # type: ignore[attr-defined]
    await made.start()
    try:
        yield made
    finally:
        if isinstance(made, RedisQueue | RabbitMQQueue):
            await made.drop(name)
        await made.close()


def http_pipeline(queue: Queue, server: OpenAIServer, **sections) -> Pipeline:
    return make_pipeline(
        name=queue.pipeline_name,  # type: ignore[attr-defined]
        embedding={"base_url": server.url, "max_retries": 0, "timeout_s": 5},
        queue={"kind": queue.kind, "max_attempts": 3}, **sections)


async def seed(db: asyncpg.Connection, pipeline: Pipeline, queue: Queue, count: int,
               body: str = "'row ' || i") -> None:
    await db.execute(f"INSERT INTO docs (id, body) SELECT i, {body} "
                     f"FROM generate_series(1, {count}) i")
    await queue.publish(pipeline.name, [task_for(pipeline, i) for i in range(1, count + 1)])


async def test_workers_drain_the_queue_and_write_every_row(db, pool, queue, request):
    pipeline = make_pipeline(name=queue.pipeline_name, queue={"kind": queue.kind})
    names = await create_table(db, pipeline)
    await seed(db, pipeline, queue, 300)
    pipe = runtime(pipeline, names, pool, FakeProvider())
    stats = pipe.counters
    workers = [PipelineWorker(pipe, queue, batch_size=50, timeout=0.2) for _ in range(2)]

    async with Running(*workers):
        await eventually(lambda: _processed(stats, 300), timeout=10)

    assert await embedded_count(db) == 300
    assert stats.written == 300 and stats.retried == stats.dead_lettered == 0
    row = await db.fetchrow("SELECT body_embedding FROM docs WHERE id = 7")
    assert np.allclose(row[0].to_numpy(), text_vector("row 7"))
    assert await queue.consume(pipeline.name, 10, 0.05) == []  # everything was acked


async def _processed(stats: Counters, count: int) -> bool:
    return stats.processed >= count


@pytest.mark.parametrize("failures", [
    [Reply.rate_limited("0")],
    [Reply.error(500), Reply.error(503)],
], ids=["429-then-200", "500x2-then-200"])
async def test_transient_provider_failures_hold_the_batch_without_spending_attempts(
        db, pool, queue, http_server, failures):
    pipeline = http_pipeline(queue, http_server)
    names = await create_table(db, pipeline)
    await seed(db, pipeline, queue, 5)
    http_server.script(*failures)
    provider = create_provider(pipeline.embedding, pipeline=pipeline.name)
    worker = PipelineWorker(runtime(pipeline, names, pool, provider, breakers=quick()), queue,
                            timeout=0.2, backoff=FAST)
    try:
        async with Running(worker):
            await eventually(lambda: _processed(worker.stats, 5))
    finally:
        await provider.aclose()

    assert worker.stats.retried == worker.stats.dead_lettered == 0
    assert worker.stats.errors >= 1 and not worker.runtime.provider.breaker.is_open
    assert await embedded_count(db) == 5
    stored = await db.fetchval("SELECT body_embedding FROM docs WHERE id = 1")
    assert np.allclose(stored.to_numpy(), deterministic_vector("row 1", 8))


async def test_a_provider_that_stays_down_pauses_consumption_and_dead_letters_nothing(
        db, pool, queue, http_server, caplog):
    pipeline = http_pipeline(queue, http_server)
    names = await create_table(db, pipeline)
    await seed(db, pipeline, queue, 6)
    http_server.always = Reply.error(500, "model is down")
    provider = create_provider(pipeline.embedding, pipeline=pipeline.name)
    pipe = runtime(pipeline, names, pool, provider, breakers=quick())
    worker = PipelineWorker(pipe, queue, batch_size=2, timeout=0.2, in_flight=1, backoff=FAST)
    try:
        async with Running(worker):
            await eventually(lambda: _probed(http_server, 6))  # several probes, all failing
            assert pipe.provider.breaker.is_open and pipe.provider.breaker.kind == "outage"
            assert await embedded_count(db) == 0 and pipe.counters.processed == 0
            assert await queue.dead_letters(pipeline.name) == []
            # consumption paused: one batch is held, the rest still waits in the queue
            assert {len(r.texts) for r in http_server.requests[1:]} == {1}  # probes only

            http_server.always = None  # the provider recovers
            await eventually(lambda: _embedded(db, 6))
    finally:
        await provider.aclose()
    assert await queue.dead_letters(pipeline.name) == []
    assert worker.stats.dead_lettered == worker.stats.retried == 0
    paused = [r for r in caplog.records if r.getMessage().startswith("paused:")]
    assert len(paused) == 1 and "provider unreachable since" in paused[0].getMessage()
    assert paused[0].exc_info is None and "model is down" in paused[0].getMessage()


async def _probed(server: OpenAIServer, count: int) -> bool:
    return len(server.requests) >= count


async def test_a_text_that_always_breaks_the_provider_is_dead_lettered_alone(db, pool, queue):
    """Dead letters are for a task that fails on its own while the provider answers."""
    pipeline = make_pipeline(name=queue.pipeline_name, queue={"kind": queue.kind,
                                                              "max_attempts": 3})
    names = await create_table(db, pipeline)
    await seed(db, pipeline, queue, 6, body="CASE WHEN i = 4 THEN 'POISON' ELSE 'ok ' || i END")

    def poisoned(texts: Sequence[str]):
        from v10r.errors import ProviderError

        return ProviderError("server error (HTTP 500)", retryable=True) \
            if "POISON" in texts else None

    worker = PipelineWorker(runtime(pipeline, names, pool, FakeProvider(fail=poisoned),
                                    breakers=quick()), queue, timeout=0.2, backoff=FAST)
    async with Running(worker):
        await eventually(lambda: _dead(queue, pipeline, 1), timeout=30)
        await eventually(lambda: _embedded(db, 5))

    [dead] = await queue.dead_letters(pipeline.name)
    assert dead.task.id == 4 and dead.attempts == 3 and "HTTP 500" in dead.error
    assert worker.stats.dead_lettered == 1 and worker.stats.processed == 5


async def _dead(queue: Queue, pipeline: Pipeline, count: int) -> bool:
    return len(await queue.dead_letters(pipeline.name)) >= count


async def _embedded(db: asyncpg.Connection, count: int) -> bool:
    return await embedded_count(db) >= count


async def test_a_rejected_input_is_dead_lettered_at_once_and_the_rest_written(
        db, pool, queue):
    pipeline = make_pipeline(name=queue.pipeline_name, queue={"kind": queue.kind})
    names = await create_table(db, pipeline)
    await seed(db, pipeline, queue, 10, body="CASE WHEN i = 3 THEN 'BAD' ELSE 'ok ' || i END")

    def reject(texts: Sequence[str]):
        from v10r.errors import ProviderError

        return ProviderError("request refused (HTTP 400): bad input") if "BAD" in texts else None

    worker = PipelineWorker(runtime(pipeline, names, pool, FakeProvider(fail=reject)),
                            queue, timeout=0.2, backoff=FAST)
    async with Running(worker):
        await eventually(lambda: _dead(queue, pipeline, 1))
        await eventually(lambda: _embedded(db, 9))

    dead = await queue.dead_letters(pipeline.name)
    assert [(d.task.id, d.attempts) for d in dead] == [(3, 1)]
    assert "HTTP 400" in dead[0].error
    assert worker.stats.processed == 9 and worker.stats.dead_lettered == 1


async def test_stopping_finishes_the_batch_in_hand(db, pool, queue):
    pipeline = make_pipeline(name=queue.pipeline_name, queue={"kind": queue.kind})
    names = await create_table(db, pipeline)
    await seed(db, pipeline, queue, 20)
    embedding = asyncio.Event()
    release = asyncio.Event()

    async def pause(texts: Sequence[str]) -> None:
        embedding.set()
        await release.wait()

    provider = FakeProvider(before_return=pause)
    worker = PipelineWorker(runtime(pipeline, names, pool, provider),
                            queue, batch_size=20, timeout=0.2)
    running = Running(worker)
    await asyncio.wait_for(embedding.wait(), 10)
    running.stop.set()
    release.set()
    await asyncio.wait_for(asyncio.gather(*running.tasks), 10)

    in_hand = len(provider.texts)
    assert 1 <= provider.calls <= worker.in_flight and in_hand >= 1  # the batches in hand
    assert await embedded_count(db) == in_hand and worker.stats.processed == in_hand


async def test_a_missing_column_is_waited_out_until_apply_adds_it(db, pool, queue):
    pipeline = make_pipeline(name=queue.pipeline_name, queue={"kind": queue.kind})
    names = await create_table(db, pipeline)
    await db.execute("ALTER TABLE docs DROP COLUMN body_embedding_note")
    await seed(db, pipeline, queue, 3)
    worker = PipelineWorker(runtime(pipeline, names, pool, FakeProvider()),
                            queue, timeout=0.2, backoff=FAST)

    async with Running(worker):
        await eventually(lambda: _errors(worker.stats))
        await db.execute("ALTER TABLE docs ADD COLUMN body_embedding_note text")
        await eventually(lambda: _embedded(db, 3))

    assert worker.stats.dead_lettered == 0 and worker.stats.retried == 0


async def _errors(stats: Counters) -> bool:
    return stats.errors > 0


async def test_run_workers_builds_pools_and_runs_every_pipeline(pg_dsn, db, queue, request):
    pipeline = make_pipeline(name=queue.pipeline_name, queue={"kind": queue.kind},
                             database={"dsn": pg_dsn})
    await create_table(db, pipeline)
    await seed(db, pipeline, queue, 40)
    stop = asyncio.Event()
    stats: dict[str, Counters] = {}
    running = asyncio.create_task(run_workers(
        [pipeline], queue, 2, stop, batch_size=16,
        providers={pipeline.name: FakeProvider()}, stats=stats))
    try:
        await eventually(lambda: _embedded(db, 40), timeout=10)
    finally:
        stop.set()
        result = await asyncio.wait_for(running, 10)
    assert result[pipeline.name].processed == 40
    assert result[pipeline.name].snapshot()["written"] == 40


@pytest.mark.parametrize("service", ["database", "redis"])
async def test_an_outage_is_waited_out_and_no_task_is_lost(pg_dsn, db, service):
    """The database or the broker goes away mid-run and comes back on the same address."""
    from urllib.parse import urlsplit

    from tests.integration.work.conftest import TcpProxy

    target = urlsplit(pg_dsn if service == "database" else REDIS_URL)
    proxy = await TcpProxy(target.hostname, target.port).start()
    via_proxy = lambda url: url.replace(f":{target.port}/", f":{proxy.port}/")
    name = f"w_{uuid.uuid4().hex[:10]}"
    queue = RedisQueue(via_proxy(REDIS_URL) if service == "redis" else REDIS_URL,
                       pipelines=[name], dead_after=0.5)
    await queue.start()
    pipeline = make_pipeline(name=name, queue={"kind": "redis"}, database={
        "dsn": via_proxy(pg_dsn) if service == "database" else pg_dsn})
    await create_table(db, pipeline)
    stats: dict[str, Counters] = {}
    stop = asyncio.Event()
    running = asyncio.create_task(run_workers(
        [pipeline], queue, 1, stop, batch_size=10, providers={name: FakeProvider()},
        stats=stats))
    try:
        await seed(db, pipeline, queue, 10)
        await eventually(lambda: _embedded(db, 10))
        await proxy.cut()
        await db.execute("INSERT INTO docs (id, body) SELECT i, 'late ' || i "
                         "FROM generate_series(11, 30) i")
        publisher = RedisQueue(REDIS_URL, pipelines=[name])
        await publisher.start()
        await publisher.publish(name, [task_for(pipeline, i) for i in range(11, 31)])
        await publisher.close()
        await eventually(lambda: _errors(stats[name]))
        await proxy.start()  # the service is back
        await eventually(lambda: _embedded(db, 30))
    finally:
        stop.set()
        await asyncio.wait_for(running, 15)
        await queue.drop(name)
        await queue.close()
        await proxy.cut()
    assert stats[name].dead_lettered == 0


async def test_foreign_messages_are_dead_lettered_and_valid_ones_written(db, pool, queue,
                                                                        caplog):
    """Redis once left a `"v": 3` message and the two valid ones beside it pending forever."""
    from tests.integration.queues.test_unreadable import publish_raw

    if queue.kind == "memory":
        pytest.skip("an in-process queue carries Task objects: nothing foreign reaches it")
    pipeline = make_pipeline(name=queue.pipeline_name, queue={"kind": queue.kind})
    names = await create_table(db, pipeline)
    await db.execute("INSERT INTO docs (id, body) VALUES (1, 'one'), (2, 'two')")
    await queue.publish(pipeline.name, [task_for(pipeline, 1)])
    await publish_raw(queue, pipeline.name, [b'{"v": 3, "pipeline": "x"}', b"{oops"])
    await queue.publish(pipeline.name, [task_for(pipeline, 2)])
    worker = PipelineWorker(runtime(pipeline, names, pool, FakeProvider()), queue, timeout=0.2)

    foreign = 3 if queue.kind == "redis" else 2  # redis: also an entry without a task field
    async with Running(worker):
        await eventually(lambda: _dead(queue, pipeline, foreign))
        await eventually(lambda: _embedded(db, 2))

    letters = await queue.dead_letters(pipeline.name)
    assert len(letters) == foreign and all(d.task is None for d in letters)
    assert any("version 3" in d.error for d in letters)
    assert worker.stats.dead_lettered == foreign and worker.stats.processed == 2
    if isinstance(queue, RedisQueue):
        pending = await queue.redis.xpending(f"v10r:tasks:{pipeline.name}", "v10r-workers")
        assert pending["pending"] == 0
    logged = [r.getMessage() for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert logged and all(pipeline.name in line for line in logged)


async def test_a_hung_request_holds_back_only_its_own_rows(db, pool, queue, http_server):
    pipeline = http_pipeline(queue, http_server)
    pipeline = pipeline.model_copy(update={"embedding": pipeline.embedding.model_copy(
        update={"timeout_s": 30})})
    names = await create_table(db, pipeline)
    await seed(db, pipeline, queue, 30)
    http_server.script(Reply.hang(25))  # the first request hangs, the others answer
    provider = create_provider(pipeline.embedding, pipeline=pipeline.name)
    worker = PipelineWorker(runtime(pipeline, names, pool, provider), queue, batch_size=5,
                            timeout=0.2, in_flight=2)
    try:
        async with Running(worker):
            await eventually(lambda: _embedded(db, 25), timeout=22)  # while one still hangs
            assert len(http_server.requests) >= 6 and await embedded_count(db) == 25
            await eventually(lambda: _embedded(db, 30), timeout=40)
    finally:
        await provider.aclose()
    assert worker.stats.dead_lettered == worker.stats.retried == 0


async def test_a_write_to_a_column_that_was_renamed_re_resolves_the_names(pg_dsn, db, queue):
    """A worker holding the spec's names (or names from before a cut-over) finds the
    columns `v10r apply` really used instead of retrying forever."""
    from v10r.compile.names import pipeline_names
    from v10r.reconcile import apply_pipelines

    await db.execute("CREATE TABLE docs (id bigint PRIMARY KEY, body text, "
                     "body_embedding text)")  # the user's column: apply renames ours
    pipeline = make_pipeline(name=queue.pipeline_name, queue={"kind": queue.kind},
                             database={"dsn": pg_dsn}, target={"on_collision": "rename"})
    await apply_pipelines([pipeline])
    await seed(db, pipeline, queue, 5)
    stats: dict[str, Counters] = {}
    stop = asyncio.Event()
    running = asyncio.create_task(run_workers(
        [pipeline], queue, 1, stop, providers={pipeline.name: FakeProvider()},
        names={pipeline.name: pipeline_names(pipeline)}, stats=stats))
    try:
        await eventually(lambda: _renamed_embedded(db, 5))
    finally:
        stop.set()
        await asyncio.wait_for(running, 15)
    assert await db.fetchval("SELECT count(body_embedding) FROM docs") == 0  # untouched
    assert stats[pipeline.name].dead_lettered == stats[pipeline.name].retried == 0


async def _renamed_embedded(db: asyncpg.Connection, count: int) -> bool:
    return await db.fetchval("SELECT count(body_embedding_v10r) FROM docs") >= count
