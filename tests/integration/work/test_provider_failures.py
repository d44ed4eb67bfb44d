"""What a provider does wrong costs what it must and no more, against a real HTTP server:
bad credentials stop the batch at once, an outage is retried (never bisected), a refused
input is bisected down to itself, and a vector that cannot be stored fails only its row."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Iterator

import asyncpg
import numpy as np
import pytest

from tests.integration.work.conftest import FakeProvider, create_table, make_pipeline, task_for
from tests.services.openai_server import OpenAIServer, Reply
from v10r.errors import ProviderAuthError, ProviderError, ProviderUnavailable
from v10r.providers.deterministic import deterministic_vector
from v10r.providers.factory import create_provider
from v10r.providers.retry import Backoff
from v10r.queues.memory import MemoryQueue
from v10r.spec.model import Pipeline
from v10r.work.breaker import Breakers
from v10r.work.core import BatchProcessor, Status
from v10r.work.runtime import PipelineRuntime
from v10r.work.worker import PipelineWorker

pytestmark = pytest.mark.integration

ROWS = 64


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(dimensions=8) as running:
        yield running


def pipeline_for(server: OpenAIServer, retries: int = 0, timeout_s: float = 5,
                 **sections) -> Pipeline:
    return make_pipeline(embedding={"base_url": server.url, "max_retries": retries,
                                    "timeout_s": timeout_s, "batch_size": ROWS}, **sections)


@pytest.fixture
async def batch(db: asyncpg.Connection, pool: asyncpg.Pool, server: OpenAIServer):
    """Builds a processor over `ROWS` rows ('row 1'...) and the tasks of those rows."""
    providers = []

    async def build(retries: int = 0, **sections) -> tuple[BatchProcessor, list]:
        pipeline = pipeline_for(server, retries, **sections)
        names = await create_table(db, pipeline)
        await db.execute("INSERT INTO docs (id, body) SELECT i, 'row ' || i "
                         f"FROM generate_series(1, {ROWS}) i")
        provider = create_provider(pipeline.embedding, pipeline=pipeline.name)
        providers.append(provider)
        processor = BatchProcessor(pipeline, names, pool, pool, provider)
        return processor, [task_for(pipeline, i) for i in range(1, ROWS + 1)]

    yield build
    for provider in providers:
        await provider.aclose()


async def written(db: asyncpg.Connection) -> dict[int, np.ndarray]:
    rows = await db.fetch("SELECT id, body_embedding FROM docs WHERE body_embedding IS NOT NULL")
    return {r["id"]: r["body_embedding"].to_numpy() for r in rows}


@pytest.mark.parametrize("status", [401, 403])
async def test_bad_credentials_stop_the_batch_with_one_request(batch, server, db, status):
    processor, tasks = await batch(retries=3)
    server.always = Reply.error(status, "Incorrect API key provided")
    with pytest.raises(ProviderAuthError) as caught:
        await processor.process(tasks)
    assert len(server.requests) == 1  # was 127: every half bisected down to single rows
    assert f"authentication failed (HTTP {status})" in str(caught.value)
    assert "api_key" in (caught.value.hint or "")
    assert await written(db) == {}


@pytest.mark.parametrize("reply", [Reply.error(500), Reply.error(503), Reply.rate_limited("0"),
                                   Reply.hang(10)], ids=["500", "503", "429", "timeout"])
async def test_an_unavailable_provider_is_retried_and_never_bisected(batch, server, db, reply):
    processor, tasks = await batch(retries=2, timeout_s=0.3 if reply.delay_s else 5)
    server.always = reply
    outcome = await processor.process(tasks)
    assert len(server.requests) == 3  # the first try and two retries, for all 64 rows at once
    assert all(o.status is Status.FAILED and o.retryable for o in outcome.outcomes)
    assert isinstance(outcome.unavailable, ProviderUnavailable)  # what a runtime pauses on
    assert outcome.embedded == ROWS
    assert await written(db) == {}


async def test_a_refused_input_is_bisected_down_to_itself(batch, server, db):
    processor, tasks = await batch()
    server.refuse["row 17"] = "input 17 is too long"  # 'row 17' only: not a prefix of others
    outcome = await processor.process(tasks)
    failed = [i for i, o in enumerate(outcome.outcomes) if o.status is Status.FAILED]
    assert failed == [16] and not outcome.outcomes[16].retryable
    assert outcome.unavailable is None
    assert "input 17 is too long" in outcome.outcomes[16].error
    assert len(server.requests) == 1 + 2 * 6  # one try, then two halves per level of 64
    stored = await written(db)
    assert len(stored) == ROWS - 1 and 17 not in stored
    np.testing.assert_allclose(stored[3], deterministic_vector("row 3", 8), atol=1e-3)


async def test_the_provider_classifies_its_errors(server):
    pipeline = pipeline_for(server)
    provider = create_provider(pipeline.embedding, pipeline=pipeline.name)
    try:
        for reply, kind in [(Reply.error(401), ProviderAuthError),
                            (Reply.error(403), ProviderAuthError),
                            (Reply.error(500), ProviderUnavailable),
                            (Reply.error(502), ProviderUnavailable),
                            (Reply.rate_limited("0"), ProviderUnavailable),
                            (Reply.error(400), ProviderError),
                            (Reply.error(422), ProviderError)]:
            server.always = reply
            with pytest.raises(ProviderError) as caught:
                await provider.embed(["a"])
            assert type(caught.value) is kind, reply.status
            assert caught.value.retryable is (kind is ProviderUnavailable)
    finally:
        await provider.aclose()


@pytest.mark.parametrize(("kind", "target", "reason"), [
    ("huge", "halfvec", "outside halfvec's range"),
    ("zero", "vector", "all-zero"),
    ("nan", "vector", "NaN"),
    ("inf", "halfvec", "NaN or infinity"),
])
async def test_a_vector_that_cannot_be_stored_fails_only_its_row(batch, server, db, kind,
                                                                 target, reason):
    processor, tasks = await batch(target={"type": target})
    server.vectors["row 5"] = kind  # also 'row 50'..'row 59': eleven rows in all
    outcome = await processor.process(tasks)
    bad = {5, *range(50, 60)}
    for row_id, result in zip(range(1, ROWS + 1), outcome.outcomes):
        if row_id in bad:
            assert result.status is Status.FAILED and reason in result.error
            assert not result.retryable
        else:
            assert result.status is Status.WRITTEN
    assert len(server.requests) == 1  # judged per row: no bisection
    stored = await written(db)
    assert set(stored) == set(range(1, ROWS + 1)) - bad
    np.testing.assert_allclose(stored[7], deterministic_vector("row 7", 8), atol=1e-2)


async def test_vectors_of_the_wrong_size_fail_their_rows_with_the_fix(db, pool):
    pipeline = make_pipeline()
    names = await create_table(db, pipeline)
    await db.execute("INSERT INTO docs (id, body) VALUES (1, 'a'), (2, 'b')")
    processor = BatchProcessor(pipeline, names, pool, pool, FakeProvider(dimensions=5))
    outcome = await processor.process([task_for(pipeline, 1), task_for(pipeline, 2)])
    assert all(o.status is Status.FAILED and "embedding.dimensions" in o.error
               for o in outcome.outcomes)


@pytest.mark.parametrize("declare_length", [False, True], ids=["chunked", "content-length"])
async def test_a_runaway_response_is_cut_off_at_a_bound(server, declare_length):
    pipeline = pipeline_for(server)
    provider = create_provider(pipeline.embedding, pipeline=pipeline.name)
    server.always = Reply.huge(600_000_000, declare_length=declare_length)
    tracemalloc.start()
    try:
        with pytest.raises(ProviderError, match="response is larger than") as caught:
            await provider.embed(["a", "b"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await provider.aclose()
    assert not caught.value.retryable
    assert peak < 20_000_000  # read ≈70 kB of 600 MB, not the whole body
    await asyncio.sleep(0.1)
    assert server.streamed_bytes < 50_000_000


async def test_escape_sequences_from_the_provider_never_reach_the_log(server, caplog):
    pipeline = pipeline_for(server, retries=1)
    provider = create_provider(pipeline.embedding, pipeline=pipeline.name)
    server.always = Reply.error(500, "\x1b[2J\x1b]0;owned\x07\u202eevil")
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.embed(["a"])
    finally:
        await provider.aclose()
    shown = str(caught.value) + caplog.text
    assert not any(c in shown for c in "\x1b\x07\u202e")
    assert "\\x1b[2J" in str(caught.value)


async def test_a_worker_holds_its_batch_on_bad_credentials_and_dead_letters_nothing(
        db, pool, server):
    queue = MemoryQueue()
    pipeline = pipeline_for(server, queue={"kind": "memory", "max_attempts": 2})
    names = await create_table(db, pipeline)
    await db.execute("INSERT INTO docs (id, body) SELECT i, 'row ' || i "
                     "FROM generate_series(1, 8) i")
    await queue.publish(pipeline.name, [task_for(pipeline, i) for i in range(1, 9)])
    server.always = Reply.unauthorized()
    provider = create_provider(pipeline.embedding, pipeline=pipeline.name)
    breakers = Breakers(backoff=Backoff(base_s=0.05, cap_s=0.2))
    worker = PipelineWorker(PipelineRuntime.build(pipeline, names, pool, pool, provider,
                                                  breakers=breakers), queue,
                            timeout=0.05, backoff=Backoff(base_s=0.01, cap_s=0.02))
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        async with asyncio.timeout(20):
            while len(server.requests) < 5:
                await asyncio.sleep(0.01)
        assert await queue.dead_letters(pipeline.name) == []
        assert worker.stats.dead_lettered == 0 and worker.stats.retried == 0
        # the whole batch or the breaker's one-text probe, never halves
        assert all(len(r.texts) in (8, 1) for r in server.requests)
        server.always = None  # the key is fixed
        async with asyncio.timeout(20):
            while len(await written(db)) < 8:
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
        await provider.aclose()
