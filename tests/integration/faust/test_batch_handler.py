"""The Faust agent's batch handling, on real PostgreSQL+pgvector: dedup never drops a
row's last change, an outage is held without spending attempts, a task that fails on
its own is retried with backoff and then dead-lettered, an unreadable message is
dead-lettered, and no task leaves a batch without an outcome."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

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
from v10r.errors import ProviderAuthError, ProviderError
from v10r.providers.retry import Backoff
from v10r.queues.base import Delivery
from v10r.stream.batch import BatchHandler, Incoming
from v10r.stream.settings import FaustSettings
from v10r.tasks import Task
from v10r.work.breaker import Breakers
from v10r.work.runtime import PipelineRuntime

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
    dead: list[tuple[Task | None, int, str]] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)

    async def dead_letter(self, deliveries: Sequence[Delivery], error: str) -> None:
        self.dead.extend((d.task, d.attempts, error) for d in deliveries)
        self.raw.extend(d.body for d in deliveries)

    async def republish(self, tasks: Sequence[Task]) -> None:
        raise AssertionError("only a stopping worker re-publishes")


async def handler_for(db: asyncpg.Connection, pool: asyncpg.Pool, provider: FakeProvider,
                      **queue: object) -> tuple[BatchHandler, DictLedger, ListOutbox]:
    pipeline = make_pipeline(queue={"kind": "kafka", **queue})
    names = await create_table(db, pipeline)
    ledger, outbox = DictLedger(), ListOutbox()
    runtime = PipelineRuntime.build(pipeline, names, pool, pool, provider,
                                    breakers=Breakers(backoff=Backoff(base_s=0.01, cap_s=0.05)))
    return BatchHandler(runtime, ledger, outbox, SETTINGS), ledger, outbox


def message(task: Task, published_at: float, attempts: int = 1) -> Incoming:
    return Incoming(raw=task.to_json(), published_at=published_at, attempts=attempts, task=task)


async def stored_vector(db: asyncpg.Connection, key: int) -> np.ndarray:
    return np.array(await db.fetchval("SELECT body_embedding::real[] FROM public.docs "
                                      "WHERE id = $1", key), dtype=np.float32)


async def test_a_task_published_before_its_row_was_fetched_is_skipped(db, pool) -> None:
    provider = FakeProvider()
    handler, ledger, _ = await handler_for(db, pool, provider)
    await db.execute("INSERT INTO public.docs (id, body) VALUES (1, 'first text')")
    task = task_for(handler.runtime.pipeline, 1)
    published = time.time() - 5

    first = await handler.handle([message(task, published)])
    again = await handler.handle([message(task, published)])  # a redelivery

    assert (first.written, again.deduplicated, again.skipped) == (1, 1, 1)
    assert provider.calls == 1 and ledger.last_fetch(task.key.decode()) > published


async def test_a_change_after_the_last_fetch_is_always_processed(db, pool) -> None:
    provider = FakeProvider()
    handler, _, _ = await handler_for(db, pool, provider)
    await db.execute("INSERT INTO public.docs (id, body) VALUES (1, 'old text')")
    task = task_for(handler.runtime.pipeline, 1)
    await handler.handle([message(task, time.time() - 5)])

    await db.execute("UPDATE public.docs SET body = 'new text' WHERE id = 1")
    counts = await handler.handle([message(task, time.time() + 1)])

    assert counts.written == 1 and counts.deduplicated == 0
    np.testing.assert_allclose(await stored_vector(db, 1), text_vector("new text"), atol=1e-6)


async def test_a_text_that_keeps_breaking_the_provider_is_retried_then_dead_lettered(
        db, pool) -> None:
    provider = FakeProvider(fail=lambda texts: ProviderError("server busy", retryable=True)
                            if "b" in texts else None)
    handler, _, outbox = await handler_for(db, pool, provider, max_attempts=3)
    await db.execute("INSERT INTO public.docs (id, body) VALUES (1, 'a'), (2, 'b')")
    tasks = [task_for(handler.runtime.pipeline, k) for k in (1, 2)]

    counts = await handler.handle([message(t, time.time()) for t in tasks])

    assert (counts.written, counts.retried, counts.dead_lettered) == (1, 2, 1)
    assert [(t, n) for t, n, _ in outbox.dead] == [(tasks[1], 3)]
    assert "server busy" in outbox.dead[0][2]


async def test_an_outage_is_held_without_spending_attempts(db, pool) -> None:
    down = iter([ProviderError("cannot connect (ConnectError)", retryable=True)] * 4)
    provider = FakeProvider(fail=lambda texts: next(down, None))
    handler, _, outbox = await handler_for(db, pool, provider, max_attempts=2)
    await db.execute("INSERT INTO public.docs (id, body) VALUES (1, 'a'), (2, 'b')")
    tasks = [task_for(handler.runtime.pipeline, k) for k in (1, 2)]

    counts = await handler.handle([message(t, time.time()) for t in tasks])

    assert (counts.written, counts.retried, counts.dead_lettered, outbox.dead) == (2, 0, 0, [])
    assert counts.errors >= 1 or handler.runtime.counters.errors >= 1


async def test_rejected_credentials_pause_instead_of_dead_lettering(db, pool, caplog) -> None:
    import asyncio

    provider = FakeProvider(fail=lambda texts: ProviderAuthError("authentication failed for "
                                                             "provider custom"))
    handler, _, outbox = await handler_for(db, pool, provider)
    await db.execute("INSERT INTO public.docs (id, body) VALUES (1, 'a')")

    job = asyncio.ensure_future(handler.handle([message(task_for(handler.runtime.pipeline, 1),
                                                        0.0)]))
    await asyncio.sleep(1.0)
    breaker = handler.runtime.provider.breaker
    assert not job.done() and breaker.is_open and breaker.kind == "auth" and outbox.dead == []
    [line] = [r for r in caplog.records if r.getMessage().startswith("paused:")]
    assert line.levelname == "ERROR" and "rejected the credentials" in line.getMessage()

    provider.fail = None  # the key is fixed on the provider's side
    counts = await asyncio.wait_for(job, 10)
    assert counts.written == 1 and outbox.dead == []


async def test_a_failure_that_goes_away_is_written_on_the_retry(db, pool) -> None:
    replies = iter([ProviderError("busy", retryable=True)])
    provider = FakeProvider(fail=lambda texts: next(replies, None))
    handler, _, outbox = await handler_for(db, pool, provider)
    await db.execute("INSERT INTO public.docs (id, body) VALUES (1, 'a')")

    counts = await handler.handle([message(task_for(handler.runtime.pipeline, 1), 0.0)])

    assert (counts.written, counts.retried, counts.dead_lettered, outbox.dead) == (1, 0, 0, [])


async def test_a_bad_input_is_dead_lettered_at_once_and_the_rest_is_written(db, pool) -> None:
    provider = FakeProvider(fail=lambda texts: ProviderError("input rejected") if "bad" in texts
                            else None)
    handler, _, outbox = await handler_for(db, pool, provider, max_attempts=5)
    await db.execute("INSERT INTO public.docs (id, body) VALUES (1, 'good'), (2, 'bad')")
    tasks = [task_for(handler.runtime.pipeline, k) for k in (1, 2)]

    counts = await handler.handle([message(t, 0.0) for t in tasks])

    assert (counts.written, counts.dead_lettered, counts.retried) == (1, 1, 0)
    assert [(t, n) for t, n, _ in outbox.dead] == [(tasks[1], 1)]


@pytest.mark.parametrize("raw", [
    b"{not json", b'{"v": 3, "pipeline": "docs"}', b'{"v": 1, "pipeline": "docs"}', b"",
    b"\xff\xfe", b"[1, 2]",
], ids=["bad-json", "v3", "missing-fields", "empty", "not-utf8", "not-an-object"])
async def test_an_unreadable_message_is_dead_lettered_and_the_batch_goes_on(db, pool,
                                                                           raw) -> None:
    from v10r.stream.runtime import incoming

    handler, _, outbox = await handler_for(db, pool, FakeProvider())
    await db.execute("INSERT INTO public.docs (id, body) VALUES (1, 'a')")
    [broken] = incoming(_Event(raw))
    assert broken.task is None and broken.error

    counts = await handler.handle([broken, message(task_for(handler.runtime.pipeline, 1), 0.0)])

    assert (counts.dead_lettered, counts.written, counts.processed) == (1, 1, 1)
    assert outbox.dead == [(None, 1, broken.error)] and outbox.raw == [raw]
    assert handler.progress.batches == 1


@dataclass
class _Message:
    headers: list
    timestamp: float = 0.0


class _Event:
    """What `incoming` reads of a Faust event."""

    def __init__(self, value: bytes) -> None:
        self.value = value
        self.message = _Message([("attempts", b"oops")])


async def test_two_batches_in_flight_for_one_row_end_on_its_last_text(db, pool) -> None:
    """Agents keep several batches in flight: a slow batch holding a row's old text
    finishes after a later batch wrote the new one, and must not overwrite it."""
    import asyncio

    release = asyncio.Event()

    async def hold_old(texts: Sequence[str]) -> None:
        if "old text" in texts:
            await release.wait()

    provider = FakeProvider(before_return=hold_old)
    handler, _, outbox = await handler_for(db, pool, provider)
    await db.execute("INSERT INTO public.docs (id, body) VALUES (1, 'old text')")
    task = task_for(handler.runtime.pipeline, 1)
    slow = asyncio.ensure_future(handler.handle([message(task, time.time() - 5)]))
    while "old text" not in provider.texts:
        await asyncio.sleep(0.01)

    await db.execute("UPDATE public.docs SET body = 'new text' WHERE id = 1")
    fast = await handler.handle([message(task, time.time() + 1)])
    release.set()
    late = await asyncio.wait_for(slow, 30)

    assert fast.written == 1 and late.written == 0 and outbox.dead == []
    np.testing.assert_allclose(await stored_vector(db, 1), text_vector("new text"), atol=1e-6)
