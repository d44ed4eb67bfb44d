"""The catch-up scan's keyset pages visit every row exactly once, whatever the key: the
qualified ordering and bound (`pg_catalog` operators) agree for every key type."""

from __future__ import annotations

import asyncpg
import pytest

from tests.integration.listen.helpers import (
    KEY_TYPE_IDS,
    KEY_TYPES,
    make_key_table,
    make_pipeline,
)
from v10r.listen.catchup import scan_target
from v10r.listen.targets import Target
from v10r.queues.memory import MemoryQueue
from v10r.reconcile import apply_pipelines

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("columns", "key", "rows"), KEY_TYPES, ids=KEY_TYPE_IDS)
@pytest.mark.parametrize("page_size", [1, 7, 1000])
async def test_every_row_is_enqueued_exactly_once(pg_dsn: str, columns: str, key: list[str],
                                                  rows: str, page_size: int) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        expected = await make_key_table(conn, columns, key, rows)
        pipeline = make_pipeline(pg_dsn, "k", key=key)
        await apply_pipelines([pipeline])
        queue = MemoryQueue()
        count = await scan_target(conn, Target.of(pipeline), queue, page_size=page_size)
        seen = []
        while deliveries := await queue.consume(pipeline.name, 1000, 0.01):
            seen.extend(repr(d.task.id) for d in deliveries)
    finally:
        await conn.close()
    assert count == expected == len(seen) == len(set(seen))
