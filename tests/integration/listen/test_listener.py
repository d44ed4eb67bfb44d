"""The listener turns row changes into tasks: none lost, bursts collapsed, gaps caught up."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.integration.listen.helpers import (
    Table,
    collect_ids,
    fast_settings,
    running,
    wait_until,
)
from v10r.errors import PlanError
from v10r.listen.applied import resolve_targets
from v10r.listen.listener import Listener
from v10r.queues.memory import MemoryQueue
from v10r.queues.redis import RedisQueue

pytestmark = pytest.mark.integration


async def test_a_thousand_inserts_become_a_thousand_tasks(make_table) -> None:
    table: Table = await make_table()
    queue = MemoryQueue()
    async with running(Listener([table.target], queue, fast_settings())) as listener:
        await table.insert(range(1, 1001))
        ids = await collect_ids(queue, table.pipeline.name, set(range(1, 1001)))
    assert sorted(set(ids)) == list(range(1, 1001))
    assert listener.stats.notifications == 1000


async def test_a_thousand_inserts_reach_redis(make_table, redis_url: str) -> None:
    table: Table = await make_table()
    name = table.pipeline.name
    queue = RedisQueue(redis_url, pipelines=[name])
    await queue.start()
    try:
        async with running(Listener([table.target], queue, fast_settings())):
            await table.insert(range(1, 1001))
            ids = await collect_ids(queue, name, set(range(1, 1001)))
        assert sorted(set(ids)) == list(range(1, 1001))
    finally:
        await queue.drop(name)
        await queue.close()


async def test_a_burst_of_updates_to_one_row_becomes_at_most_two_tasks(make_table) -> None:
    table: Table = await make_table(window_ms=500)
    await table.insert(range(1, 2))
    queue = MemoryQueue()
    name = table.pipeline.name
    async with running(Listener([table.target], queue, fast_settings(catchup=False))) as lis:
        conn = await asyncpg.connect(table.dsn)
        try:
            for i in range(50):
                await conn.execute(f'UPDATE "{table.name}" SET body = $1 WHERE id = 1', f"v{i}")
        finally:
            await conn.close()
        await wait_until(lambda: lis.stats.notifications == 50)
        published_by_last_update = lis.stats.published
        await wait_until(lambda: lis.stats.published == 2)
        await wait_until(lambda: lis.idle)
        deliveries = await queue.consume(name, 100, 0.5)
    assert published_by_last_update <= 1  # the trailing task comes after the final update
    assert [d.task.id for d in deliveries] == [1, 1]


async def test_rows_inserted_while_stopped_are_enqueued_on_start(make_table) -> None:
    table: Table = await make_table()
    await table.insert(range(1, 31))
    queue = MemoryQueue()
    async with running(Listener([table.target], queue, fast_settings())) as listener:
        ids = await collect_ids(queue, table.pipeline.name, set(range(1, 31)))
    assert sorted(ids) == list(range(1, 31))
    assert listener.stats.notifications == 0


async def test_no_catchup_skips_the_start_scan(make_table) -> None:
    table: Table = await make_table()
    await table.insert(range(1, 4))
    queue = MemoryQueue()
    async with running(Listener([table.target], queue, fast_settings(catchup=False))):
        await table.insert(range(4, 5))
        ids = await collect_ids(queue, table.pipeline.name, {4})
        assert await queue.consume(table.pipeline.name, 10, 0.3) == []
    assert ids == [4]


async def test_a_terminated_connection_is_reestablished_and_nothing_is_lost(make_table) -> None:
    table: Table = await make_table()
    queue = MemoryQueue()
    async with running(Listener([table.target], queue, fast_settings())) as listener:
        await table.insert(range(1, 11))
        pid = listener.backend_pid
        admin = await asyncpg.connect(table.dsn)
        try:
            async with admin.transaction():  # committed while the listener is gone
                await admin.executemany(f'INSERT INTO "{table.name}" (id, body) VALUES ($1, $2)',
                                        [(i, "gap") for i in range(11, 21)])
                assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        await wait_until(lambda: listener.stats.connections == 2 and listener.listening.is_set())
        await table.insert(range(21, 31))
        ids = await collect_ids(queue, table.pipeline.name, set(range(1, 31)))
    assert set(ids) == set(range(1, 31))
    assert listener.backend_pid != pid


async def test_a_bulk_statement_scan_notification_enqueues_all_its_rows(make_table) -> None:
    table: Table = await make_table(bulk_threshold=10)
    queue = MemoryQueue()
    async with running(Listener([table.target], queue, fast_settings(catchup=False))) as lis:
        await table.execute("INSERT INTO {t} (id, body) SELECT g, 'b' "
                            "FROM generate_series(1, 50) g")
        ids = await collect_ids(queue, table.pipeline.name, set(range(1, 51)))
        await wait_until(lambda: lis.stats.catchups == 1)
    assert sorted(ids) == list(range(1, 51))
    assert lis.stats.notifications == 1
    assert lis.stats.caught_up_rows == 50


async def test_a_slow_queue_pauses_reading_instead_of_buffering_without_limit(
        make_table) -> None:
    rows = 20_000
    table: Table = await make_table(window_ms=0, bulk_threshold=None)
    gate = asyncio.Event()

    class GatedQueue(MemoryQueue):
        async def publish(self, pipeline, tasks):  # a broker that stalls until released
            await gate.wait()
            await super().publish(pipeline, tasks)

    queue = GatedQueue()
    settings = fast_settings(catchup=False, max_buffer=100, batch_size=100)
    async with running(Listener([table.target], queue, settings)) as listener:
        await table.execute("INSERT INTO {t} (id, body) SELECT g, 'b' "
                            f"FROM generate_series(1, {rows}) g")
        await wait_until(lambda: listener.paused)
        await asyncio.sleep(0.3)  # give a runaway buffer the chance to show itself
        # Bounded by max_buffer plus what one socket read had already parsed.
        assert listener.buffered < rows // 2
        assert listener.stats.notifications < rows
        gate.set()
        ids = await collect_ids(queue, table.pipeline.name, set(range(1, rows + 1)))
    assert len(set(ids)) == rows


async def test_the_listener_refuses_a_pipeline_that_is_not_applied(make_table) -> None:
    table: Table = await make_table(applied=False)
    conn = await asyncpg.connect(table.dsn)
    try:
        with pytest.raises(PlanError) as caught:
            await resolve_targets(conn, [table.pipeline])
    finally:
        await conn.close()
    message = str(caught.value)
    assert table.pipeline.name in message
    assert "v10r apply" in message


async def test_tasks_lost_downstream_are_enqueued_again_by_the_periodic_scan(make_table) -> None:
    table: Table = await make_table()
    queue = MemoryQueue()
    settings = fast_settings(catchup=False, catchup_interval_s=0.3)
    async with running(Listener([table.target], queue, settings)) as listener:
        await table.insert(range(1, 6))
        lost = await collect_ids(queue, table.pipeline.name, set(range(1, 6)))
        assert sorted(lost) == [1, 2, 3, 4, 5]  # taken and acked, never embedded: lost
        again = await collect_ids(queue, table.pipeline.name, set(range(1, 6)))
        await wait_until(lambda: listener.stats.caught_up_rows >= 5)
    assert sorted(set(again)) == [1, 2, 3, 4, 5]
    assert listener.stats.notifications == 5  # the scan, not a notification, found them
