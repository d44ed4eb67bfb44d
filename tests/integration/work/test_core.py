"""The processing core against real PostgreSQL+pgvector: what gets written, what is
skipped, and that a slow worker never overwrites the vector of a newer text."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

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
from v10r.compile.content_hash import fingerprint, source_hash, stored_hash
from v10r.errors import ProviderError
from v10r.preprocess import preprocess
from v10r.spec.model import Pipeline
from v10r.work.core import EMPTY_TEXT_NOTE, BatchProcessor, Status

pytestmark = pytest.mark.integration


async def stored_rows(db: asyncpg.Connection, where: str = "true") -> dict:
    rows = await db.fetch(f"SELECT id, body, body_embedding, body_embedding_model, "
                          f"body_embedding_hash, body_embedding_at, body_embedding_note "
                          f"FROM public.docs WHERE {where} ORDER BY id")
    return {r["id"]: r for r in rows}


def expected_vector(pipeline: Pipeline, values: dict[str, str | None]) -> np.ndarray:
    return text_vector(preprocess(pipeline, values))


async def test_500_rows_get_the_vector_of_their_preprocessed_text_and_metadata(db, pool):
    pipeline = make_pipeline(preprocess={"strip_html": True})
    names = await create_table(db, pipeline)
    await db.execute("INSERT INTO docs (id, body) SELECT i, '<p>Row  ' || i || '</p>' "
                     "FROM generate_series(1, 500) i")
    provider = FakeProvider()
    processor = BatchProcessor(pipeline, names, pool, pool, provider)

    outcome = await processor.process([task_for(pipeline, i) for i in range(1, 501)])

    assert outcome.count(Status.WRITTEN) == 500 and outcome.embedded == 500
    assert provider.calls == 1
    rows = await stored_rows(db)
    for row in rows.values():
        assert np.allclose(row["body_embedding"].to_numpy(),
                           expected_vector(pipeline, {"body": row["body"]}))
        assert row["body_embedding_model"] == "fake-model"
        assert row["body_embedding_hash"] == stored_hash(fingerprint(pipeline),
                                                         source_hash([row["body"]]))
        assert row["body_embedding_at"] is not None and row["body_embedding_note"] is None
    assert provider.texts[0] == "Row 1"


async def test_reprocessing_unchanged_rows_makes_no_embedding_call(db, pool):
    pipeline = make_pipeline()
    names = await create_table(db, pipeline)
    await db.execute("INSERT INTO docs (id, body) SELECT i, 'text ' || i "
                     "FROM generate_series(1, 50) i")
    provider = FakeProvider()
    processor = BatchProcessor(pipeline, names, pool, pool, provider)
    tasks = [task_for(pipeline, i) for i in range(1, 51)]
    await processor.process(tasks)
    calls = provider.calls

    again = await processor.process(tasks)

    assert provider.calls == calls
    assert again.count(Status.UNCHANGED) == 50 and again.embedded == 0


async def test_a_model_change_makes_rows_stale(db, pool):
    pipeline = make_pipeline()
    names = await create_table(db, pipeline)
    await db.execute("INSERT INTO docs (id, body) VALUES (1, 'x')")
    await BatchProcessor(pipeline, names, pool, pool, FakeProvider()).process(
        [task_for(pipeline, 1)])
    changed = make_pipeline(embedding={"model": "fake-model-2"})
    provider = FakeProvider(model="fake-model-2")

    outcome = await BatchProcessor(changed, names, pool, pool, provider).process(
        [task_for(changed, 1)])

    assert outcome.count(Status.WRITTEN) == 1 and provider.calls == 1
    assert await db.fetchval("SELECT body_embedding_model FROM docs") == "fake-model-2"


async def test_a_row_updated_while_its_old_text_is_embedded_is_not_overwritten(
        db, pool, pg_dsn):
    pipeline = make_pipeline()
    names = await create_table(db, pipeline)
    await db.execute("INSERT INTO docs (id, body) VALUES (1, 'old text'), (2, 'other')")
    other = await asyncpg.connect(pg_dsn)

    async def update_meanwhile(texts: Sequence[str]) -> None:
        if "old text" in texts:  # the worker has fetched the row and is embedding
            await other.execute("UPDATE docs SET body = 'new text' WHERE id = 1")

    provider = FakeProvider(before_return=update_meanwhile)
    processor = BatchProcessor(pipeline, names, pool, pool, provider)
    try:
        first = await processor.process([task_for(pipeline, 1), task_for(pipeline, 2)])
    finally:
        await other.close()

    assert [o.status for o in first.outcomes] == [Status.SUPERSEDED, Status.WRITTEN]
    assert all(o.done for o in first.outcomes)
    assert (await stored_rows(db))[1]["body_embedding"] is None

    await processor.process([task_for(pipeline, 1)])  # the update's own task

    row = (await stored_rows(db))[1]
    assert np.allclose(row["body_embedding"].to_numpy(), text_vector("new text"))


async def test_a_concurrent_update_waits_for_the_write_and_is_then_reembedded(db, pool, pg_dsn):
    """An update committed *during* the guarded write is not lost either: the write
    re-checks the newest row version (READ COMMITTED re-evaluation)."""
    pipeline = make_pipeline()
    names = await create_table(db, pipeline)
    await db.execute("INSERT INTO docs (id, body) VALUES (1, 'old text')")
    locker = await asyncpg.connect(pg_dsn)
    transaction = locker.transaction()
    await transaction.start()
    await locker.execute("UPDATE docs SET body = 'newer text' WHERE id = 1")
    processor = BatchProcessor(pipeline, names, pool, pool, FakeProvider())
    try:
        processing = asyncio.create_task(processor.process([task_for(pipeline, 1)]))
        await _wait_for_lock_wait(db)
        await transaction.commit()
        outcome = await asyncio.wait_for(processing, 10)
    finally:
        await locker.close()

    assert outcome.outcomes[0].status is Status.SUPERSEDED
    assert (await stored_rows(db))[1]["body_embedding"] is None


async def _wait_for_lock_wait(db: asyncpg.Connection) -> None:
    for _ in range(200):
        waiting = await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()")
        if waiting:
            return
        await asyncio.sleep(0.025)
    raise AssertionError("the write never waited for the row lock")


async def test_composite_keys(db, pool):
    pipeline = make_pipeline(key=("tenant", "doc"), columns=("title", "body"),
                             target={"column": "emb"})
    names = await create_table(db, pipeline, key_types=("int", "text"))
    await db.execute("INSERT INTO docs VALUES (1, 'a', 'T1', 'B1'), (1, 'b', 'T2', NULL), "
                     "(2, 'a', 'T3', 'B3')")
    processor = BatchProcessor(pipeline, names, pool, pool, FakeProvider())

    outcome = await processor.process([
        task_for(pipeline, {"tenant": 1, "doc": "b"}),
        task_for(pipeline, {"tenant": 2, "doc": "a"}),
        task_for(pipeline, {"tenant": 9, "doc": "a"}),
    ])

    assert [o.status for o in outcome.outcomes] == [Status.WRITTEN, Status.WRITTEN,
                                                    Status.MISSING]
    rows = {(r[0], r[1]): r[2] for r in await db.fetch("SELECT tenant, doc, emb FROM docs")}
    assert rows[(1, "a")] is None
    assert np.allclose(rows[(1, "b")].to_numpy(), text_vector("T2"))
    assert np.allclose(rows[(2, "a")].to_numpy(), text_vector("T3 B3"))


async def test_uuid_keys_and_a_qualified_mixed_case_table(db, pool):
    pipeline = make_pipeline(table='"My Schema"."My Docs"', key=("Id",), columns=("Body",))
    names = await create_table(db, pipeline, key_types=("uuid",))
    key = await db.fetchval(f"INSERT INTO {names.qualified_table} VALUES "
                            "(gen_random_uuid(), 'hello') RETURNING \"Id\"")
    processor = BatchProcessor(pipeline, names, pool, pool, FakeProvider())

    outcome = await processor.process([task_for(pipeline, str(key).upper())])

    assert outcome.outcomes[0].status is Status.WRITTEN


async def test_rows_outside_the_filter_or_deleted_are_done_without_writing(db, pool):
    pipeline = make_pipeline(source={"filter": [{"column": "status", "value": "active"}]})
    names = await create_table(db, pipeline, extra=", status text")
    await db.execute("INSERT INTO docs (id, body, status) VALUES (1, 'a', 'active'), "
                     "(2, 'b', 'draft')")
    provider = FakeProvider()
    processor = BatchProcessor(pipeline, names, pool, pool, provider)

    outcome = await processor.process([task_for(pipeline, k) for k in (1, 2, 3)])

    assert [o.status for o in outcome.outcomes] == [Status.WRITTEN, Status.MISSING,
                                                    Status.MISSING]
    assert provider.texts == ["a"]
    assert (await stored_rows(db))[2]["body_embedding_hash"] is None


@pytest.mark.parametrize("body", [None, "", "   ", "<script>x()</script>"])
async def test_empty_text_gets_a_null_vector_a_note_and_its_hash(db, pool, body):
    pipeline = make_pipeline(preprocess={"strip_html": True})
    names = await create_table(db, pipeline)
    await db.execute("INSERT INTO docs (id, body) VALUES (1, $1)", body)
    provider = FakeProvider()
    processor = BatchProcessor(pipeline, names, pool, pool, provider)

    outcome = await processor.process([task_for(pipeline, 1)])

    assert outcome.outcomes[0].status is Status.WRITTEN and provider.calls == 0
    row = (await stored_rows(db))[1]
    assert row["body_embedding"] is None and row["body_embedding_note"] == EMPTY_TEXT_NOTE
    assert row["body_embedding_hash"] == stored_hash(fingerprint(pipeline), source_hash([body]))
    again = await processor.process([task_for(pipeline, 1)])
    assert again.outcomes[0].status is Status.UNCHANGED


async def test_a_rejected_input_is_isolated_and_the_rest_of_the_batch_is_written(db, pool):
    pipeline = make_pipeline()
    names = await create_table(db, pipeline)
    await db.execute("INSERT INTO docs (id, body) SELECT i, CASE WHEN i IN (5, 12) "
                     "THEN 'BAD ' || i ELSE 'good ' || i END FROM generate_series(1, 16) i")

    def reject_bad(texts: Sequence[str]) -> ProviderError | None:
        if any(t.startswith("BAD") for t in texts):
            return ProviderError("400: input is invalid", retryable=False)
        return None

    provider = FakeProvider(fail=reject_bad)
    processor = BatchProcessor(pipeline, names, pool, pool, provider)

    outcome = await processor.process([task_for(pipeline, i) for i in range(1, 17)])

    failed = outcome.indices(done=False)
    assert failed == [4, 11]
    assert all(not outcome.outcomes[i].retryable for i in failed)
    assert "input is invalid" in (outcome.outcomes[4].error or "")
    assert outcome.count(Status.WRITTEN) == 14
    rows = await stored_rows(db)
    assert rows[5]["body_embedding"] is None and rows[5]["body_embedding_hash"] is None
    assert rows[6]["body_embedding"] is not None


async def test_a_retryable_provider_error_fails_the_embedded_tasks_for_retry(db, pool):
    pipeline = make_pipeline()
    names = await create_table(db, pipeline)
    await db.execute("INSERT INTO docs (id, body) VALUES (1, 'a'), (2, NULL)")
    provider = FakeProvider(fail=lambda texts: ProviderError("429 too many requests",
                                                             retryable=True))
    processor = BatchProcessor(pipeline, names, pool, pool, provider)

    outcome = await processor.process([task_for(pipeline, 1), task_for(pipeline, 2)])

    assert outcome.outcomes[0].status is Status.FAILED and outcome.outcomes[0].retryable
    assert outcome.outcomes[1].status is Status.WRITTEN  # empty text needs no provider
    assert provider.calls == 1


async def test_duplicate_tasks_of_one_row_share_one_embedding(db, pool):
    pipeline = make_pipeline()
    names = await create_table(db, pipeline)
    await db.execute("INSERT INTO docs (id, body) VALUES (1, 'a')")
    provider = FakeProvider()
    processor = BatchProcessor(pipeline, names, pool, pool, provider)

    outcome = await processor.process([task_for(pipeline, 1), task_for(pipeline, "1")])

    assert [o.status for o in outcome.outcomes] == [Status.WRITTEN, Status.WRITTEN]
    assert provider.texts == ["a"]


async def test_unreadable_tasks_fail_for_good_without_touching_others(db, pool):
    pipeline = make_pipeline()
    names = await create_table(db, pipeline)
    await db.execute("INSERT INTO docs (id, body) VALUES (1, 'a')")
    processor = BatchProcessor(pipeline, names, pool, pool, FakeProvider())

    outcome = await processor.process([task_for(pipeline, None), task_for(pipeline, 1)])

    assert outcome.outcomes[0].status is Status.FAILED
    assert not outcome.outcomes[0].retryable
    assert outcome.outcomes[1].status is Status.WRITTEN


async def test_halfvec_targets(db, pool):
    pipeline = make_pipeline(target={"type": "halfvec"})
    names = await create_table(db, pipeline)
    await db.execute("INSERT INTO docs (id, body) VALUES (1, 'a')")
    processor = BatchProcessor(pipeline, names, pool, pool, FakeProvider())

    await processor.process([task_for(pipeline, 1)])

    stored = await db.fetchval("SELECT body_embedding FROM docs")
    assert np.allclose(stored.to_numpy(), text_vector("a"), atol=1e-3)


async def test_a_missing_target_column_says_to_run_apply(db, pool):
    pipeline = make_pipeline()
    names = await create_table(db, pipeline)
    await db.execute("ALTER TABLE docs DROP COLUMN body_embedding_note")
    await db.execute("INSERT INTO docs (id, body) VALUES (1, 'a')")
    processor = BatchProcessor(pipeline, names, pool, pool, FakeProvider())

    from v10r.errors import PlanError

    with pytest.raises(PlanError, match="v10r apply"):
        await processor.process([task_for(pipeline, 1)])


async def test_catch_up_work_reaches_the_provider_as_backfill_and_live_work_as_live(db, pool):
    pipeline = make_pipeline()
    names = await create_table(db, pipeline)
    await db.execute("INSERT INTO docs (id, body) SELECT i, 'text ' || i "
                     "FROM generate_series(1, 4) i")
    seen: list[str] = []

    class RecordingProvider(FakeProvider):
        async def embed(self, texts: Sequence[str], **kwargs: object) -> np.ndarray:
            seen.append(str(kwargs.get("priority")))
            return await super().embed(texts)

    processor = BatchProcessor(pipeline, names, pool, pool, RecordingProvider())
    catchup = [dataclasses.replace(task_for(pipeline, i), origin="catchup") for i in (1, 2)]
    await processor.process(catchup)
    await processor.process([catchup[0], task_for(pipeline, 3)])  # one live task: live
    await processor.process([task_for(pipeline, 4)])
    assert seen == ["backfill", "live", "live"]


class ThreadRecordingProcessor(BatchProcessor):
    """Notes where each batch's hashing ran: on the event loop's thread or another."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.on_loop: list[bool] = []

    def _hash_and_select(self, rows):
        import threading
        self.on_loop.append(threading.current_thread() is threading.main_thread())
        return super()._hash_and_select(rows)


@pytest.mark.parametrize(("rows", "chars", "on_loop"), [
    (10, 50, True),  # a usual batch: hashed where it is, no thread hop
    (10, 20_000, False),  # much text: the loop must not stall on it
    (600, 20, False),  # many rows
], ids=["small", "much-text", "many-rows"])
async def test_a_batch_is_hashed_off_the_event_loop_only_when_it_is_big(db, pool, rows, chars,
                                                                      on_loop):
    pipeline = make_pipeline()
    names = await create_table(db, pipeline)
    await db.execute(f"INSERT INTO docs (id, body) SELECT i, repeat('x', {chars}) || i "
                     f"FROM generate_series(1, {rows}) i")
    processor = ThreadRecordingProcessor(pipeline, names, pool, pool, FakeProvider())

    outcome = await processor.process([task_for(pipeline, i) for i in range(1, rows + 1)])

    assert processor.on_loop == [on_loop]
    assert outcome.count(Status.WRITTEN) == rows
    stored = await stored_rows(db)
    assert all(row["body_embedding_hash"] == stored_hash(fingerprint(pipeline),
                                                         source_hash([row["body"]]))
               for row in stored.values())
