"""A backfill that stops mid-table resumes after its bookmark, whatever the key type:
the bookmark (the last key, as JSON) is read back as values of the key columns."""

from __future__ import annotations

import asyncpg
import pytest

from tests.integration.listen.helpers import (
    KEY_TYPE_IDS,
    KEY_TYPES,
    make_key_table,
    make_pipeline,
)
from v10r.listen.backfill import backfill_target
from v10r.listen.targets import Target
from v10r.queues.memory import MemoryQueue
from v10r.reconcile import apply_pipelines

pytestmark = pytest.mark.integration


class BrokerGoesAway(MemoryQueue):
    """A queue that fails on its `fail_at`-th publish, as a broker or process dying."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at, self.calls = fail_at, 0

    async def publish(self, pipeline, tasks):
        self.calls += 1
        if self.calls == self.fail_at:
            raise ConnectionError("broker gone")
        await super().publish(pipeline, tasks)


async def drain(queue: MemoryQueue, pipeline: str) -> list[str]:
    seen = []
    while deliveries := await queue.consume(pipeline, 1000, 0.01):
        seen.extend(repr(d.task.id) for d in deliveries)
    return seen


@pytest.mark.parametrize(("columns", "key", "rows"), KEY_TYPES, ids=KEY_TYPE_IDS)
async def test_a_stopped_backfill_resumes_after_its_last_key(pg_dsn: str, columns: str,
                                                             key: list[str], rows: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        expected = await make_key_table(conn, columns, key, rows)
        pipeline = make_pipeline(pg_dsn, "k", key=key)
        await apply_pipelines([pipeline])
        target = Target.of(pipeline)

        first = BrokerGoesAway(fail_at=4)
        with pytest.raises(ConnectionError):
            await backfill_target(conn, target, first, page_size=7)
        second = MemoryQueue()
        outcome = await backfill_target(conn, target, second, page_size=7)
        seen = await drain(first, pipeline.name) + await drain(second, pipeline.name)
    finally:
        await conn.close()
    assert outcome.resumed_after == 21
    assert len(seen) == len(set(seen)) == expected  # every row once: none lost, none twice
