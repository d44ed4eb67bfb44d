"""The Faust agent's batch handling, on real PostgreSQL+pgvector: dedup never drops a
row's last change, retryable failures are retried with backoff and then dead-lettered,
and no task leaves a batch without an outcome."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg
import numpy as np

from tests.integration.work.conftest import (
    FakeProvider,
    create_table,
    make_pipeline,
    task_for,
    text_vector,
)
from v10r.errors import ProviderError
from v10r.stream.batch import BatchHandler, Incoming
from v10r.stream.settings import FaustSettings
from v10r.tasks import Task
from v10r.work.core import BatchProcessor

SETTINGS = FaustSettings(retry_initial_s=0.01, retry_max_s=0.02, clock_skew_s=0.5)


@dataclass
class DictLedger:
    fetched: dict[str, float] = field(default_factory=dict)

    def last_fetch(self, key: str) -> float:
        return self.fetched.get(key, 0.0)

    def record(self, keys: Sequence[str], fetched_at: float) -> None:
        for key in keys:
            self.fetched[key] = max(fetched_at, self.last_fetch(key))


@dataclass
class ListOutbox:
    dead: list[tuple[Task, int, str]] = field(default_factory=list)

    async def dead_letter(self, tasks: Sequence[tuple[Task, int]], error: str) -> None:
        self.dead.extend((task, attempts, error) for task, attempts in tasks)

    async def republish(self, tasks: Sequence[Task]) -> None:
        raise AssertionError("only a stopping worker re-publishes")


async def handler_for(db: asyncpg.Connection, pool: asyncpg.Pool, provider: FakeProvider,
                      **queue: object) -> tuple[BatchHandler, DictLedger, ListOutbox]:
    pipeline = make_pipeline(queue={"kind": "kafka", **queue})
    names = await create_table(db, pipeline)
    ledger, outbox = DictLedger(), ListOutbox()
    processor = BatchProcessor(pipeline, names, pool, pool, provider)
    return BatchHandler(processor, ledger, outbox, SETTINGS), ledger, outbox


def message(task: Task, published_at: float, attempts: int = 1) -> Incoming:
    return Incoming(raw=task.to_json(), published_at=published_at, attempts=attempts, task=task)


async def stored_vector(db: asyncpg.Connection, key: int) -> np.ndarray:
    return np.array(await db.fetchval("SELECT body_embedding::real[] FROM public.docs "
                                      "WHERE id = $1", key), dtype=np.float32)


async def test_a_task_published_before_its_row_was_fetched_is_skipped(db, pool) -> None:
    provider = FakeProvider()
    handler, ledger, _ = await handler_for(db, pool, provider)
    await db.execute("INSERT INTO public.docs (id, body) VALUES (1, 'first text')")
    task = task_for(handler.processor.pipeline, 1)
    published = time.time() - 5

    first = await handler.handle([message(task, published)])
    again = await handler.handle([message(task, published)])  # a redelivery

    assert (first.written, again.deduplicated, again.skipped) == (1, 1, 1)
    assert provider.calls == 1 and ledger.last_fetch(task.key.decode()) > published


async def test_a_change_after_the_last_fetch_is_always_processed(db, pool) -> None:
    provider = FakeProvider()
    handler, _, _ = await handler_for(db, pool, provider)
    await db.execute("INSERT INTO public.docs (id, body) VALUES (1, 'old text')")
    task = task_for(handler.processor.pipeline, 1)
    await handler.handle([message(task, time.time() - 5)])

    await db.execute("UPDATE public.docs SET body = 'new text' WHERE id = 1")
    counts = await handler.handle([message(task, time.time() + 1)])

    assert counts.written == 1 and counts.deduplicated == 0
    np.testing.assert_allclose(await stored_vector(db, 1), text_vector("new text"), atol=1e-6)


async def test_a_retryable_failure_is_retried_then_dead_lettered(db, pool) -> None:
    provider = FakeProvider(fail=lambda texts: ProviderError("server busy", retryable=True))
    handler, _, outbox = await handler_for(db, pool, provider, max_attempts=3)
    await db.execute("INSERT INTO public.docs (id, body) VALUES (1, 'a'), (2, 'b')")
    tasks = [task_for(handler.processor.pipeline, k) for k in (1, 2)]

    counts = await handler.handle([message(t, time.time()) for t in tasks])

    assert provider.calls == 3 and counts.retried == 4 and counts.failed == 2
    assert [(t, n) for t, n, _ in outbox.dead] == [(tasks[0], 3), (tasks[1], 3)]
    assert "server busy" in outbox.dead[0][2]


async def test_a_failure_that_goes_away_is_written_on_the_retry(db, pool) -> None:
    replies = iter([ProviderError("busy", retryable=True)])
    provider = FakeProvider(fail=lambda texts: next(replies, None))
    handler, _, outbox = await handler_for(db, pool, provider)
    await db.execute("INSERT INTO public.docs (id, body) VALUES (1, 'a')")

    counts = await handler.handle([message(task_for(handler.processor.pipeline, 1), 0.0)])

    assert (counts.written, counts.retried, counts.failed, outbox.dead) == (1, 1, 0, [])


async def test_a_bad_input_is_dead_lettered_at_once_and_the_rest_is_written(db, pool) -> None:
    provider = FakeProvider(fail=lambda texts: ProviderError("input rejected") if "bad" in texts
                            else None)
    handler, _, outbox = await handler_for(db, pool, provider, max_attempts=5)
    await db.execute("INSERT INTO public.docs (id, body) VALUES (1, 'good'), (2, 'bad')")
    tasks = [task_for(handler.processor.pipeline, k) for k in (1, 2)]

    counts = await handler.handle([message(t, 0.0) for t in tasks])

    assert (counts.written, counts.failed, counts.retried) == (1, 1, 0)
    assert [(t, n) for t, n, _ in outbox.dead] == [(tasks[1], 1)]


async def test_an_unreadable_message_is_counted_and_the_batch_goes_on(db, pool) -> None:
    handler, _, _ = await handler_for(db, pool, FakeProvider())
    await db.execute("INSERT INTO public.docs (id, body) VALUES (1, 'a')")
    broken = Incoming(raw=b"{not json", published_at=0.0, error="malformed task message")

    counts = await handler.handle([broken, message(task_for(handler.processor.pipeline, 1), 0.0)])

    assert (counts.failed, counts.written, counts.processed) == (1, 1, 1)
    assert handler.progress.batches == 1
