"""The catch-up scan enqueues exactly the rows whose vector is missing or stale."""

from __future__ import annotations

import asyncpg
import pytest

from tests.integration.listen.helpers import Table, collect_ids
from v10r.compile.content_hash import fingerprint, source_hash, stored_hash
from v10r.listen.catchup import catch_up, scan_query, scan_target
from v10r.listen.targets import Target
from v10r.queues.memory import MemoryQueue

pytestmark = pytest.mark.integration


async def test_every_row_without_a_hash_is_enqueued_across_pages(make_table) -> None:
    table: Table = await make_table(bulk_threshold=None)
    await table.execute("INSERT INTO {t} (id, body) SELECT g, 'text ' || g "
                        "FROM generate_series(1, 2500) g")
    queue = MemoryQueue()
    result = await catch_up([table.target], queue, page_size=1000, interactive=False)
    assert result.enqueued == {table.pipeline.name: 2500}
    ids = await collect_ids(queue, table.pipeline.name, set(range(1, 2501)))
    assert len(ids) == 2500


async def test_rows_whose_hash_matches_their_text_are_skipped(make_table) -> None:
    table: Table = await make_table()
    await table.execute("INSERT INTO {t} (id, body) SELECT g, 'text ' || g "
                        "FROM generate_series(1, 20) g")
    fp = fingerprint(table.pipeline)
    current = {i: stored_hash(fp, source_hash([f"text {i}"])) for i in range(1, 11)}
    conn = await asyncpg.connect(table.dsn)
    try:
        await conn.executemany(
            f'UPDATE "{table.name}" SET "body_embedding_hash" = $2 WHERE id = $1',
            list(current.items()))
        # Row 5 was embedded from an older text: stale.
        await conn.execute(f'UPDATE "{table.name}" SET body = \'changed\' WHERE id = 5')
    finally:
        await conn.close()
    queue = MemoryQueue()
    result = await catch_up([table.target], queue, interactive=False)
    assert result.total == 11
    ids = await collect_ids(queue, table.pipeline.name, {5, *range(11, 21)})
    assert sorted(ids) == [5, *range(11, 21)]


async def test_only_rows_matching_the_filter_are_enqueued(make_table) -> None:
    table: Table = await make_table(filter=[{"column": "status", "op": "=", "value": "on"}])
    await table.execute("INSERT INTO {t} (id, body, status) SELECT g, 'x', "
                        "CASE WHEN g % 2 = 0 THEN 'on' ELSE 'off' END "
                        "FROM generate_series(1, 10) g")
    queue = MemoryQueue()
    result = await catch_up([table.target], queue, interactive=False)
    assert result.total == 5
    assert sorted(await collect_ids(queue, table.pipeline.name, {2, 4, 6, 8, 10})) == \
        [2, 4, 6, 8, 10]


async def test_composite_keys_are_paginated_and_sent_as_objects(pg_dsn: str) -> None:
    from tests.integration.listen.helpers import apply, make_pipeline

    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute('CREATE TABLE "Multi Key" (tenant text, n int, body text, '
                           "PRIMARY KEY (tenant, n))")
        await conn.execute('INSERT INTO "Multi Key" SELECT t, n, \'b\' FROM '
                           "unnest(array['a','b','c']) t, generate_series(1, 7) n")
    finally:
        await conn.close()
    pipeline = make_pipeline(pg_dsn, '"Multi Key"', key=["tenant", "n"])
    await apply(pg_dsn, pipeline)
    queue = MemoryQueue()
    conn = await asyncpg.connect(pg_dsn)
    try:
        count = await scan_target(conn, Target.of(pipeline), queue, page_size=4)
    finally:
        await conn.close()
    assert count == 21
    deliveries = await queue.consume(pipeline.name, 100, 1)
    ids = [d.task.id for d in deliveries]
    assert ids == [{"tenant": t, "n": n} for t in "abc" for n in range(1, 8)]
    assert {d.task.table for d in deliveries} == {"public.Multi Key"}


def test_the_scan_query_quotes_every_identifier() -> None:
    from tests.integration.listen.helpers import make_pipeline

    pipeline = make_pipeline("postgresql://x@h/db", '"we""ird"', key=["a b"], columns=["t;x"])
    query = scan_query(Target.of(pipeline), page_size=10)
    assert 'FROM "public"."we""ird" AS "src"' in query.first
    assert '"src"."a b" OPERATOR(pg_catalog.>) $1' in query.next
    assert query.first.endswith("LIMIT 10")
