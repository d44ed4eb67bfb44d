"""The catch-up scan's keyset pages visit every row exactly once, whatever the key: the
qualified ordering and bound (`pg_catalog` operators) agree for every key type."""

from __future__ import annotations

import asyncpg
import pytest

from tests.integration.listen.helpers import make_pipeline
from v10r.listen.catchup import scan_target
from v10r.listen.targets import Target
from v10r.queues.memory import MemoryQueue
from v10r.reconcile import apply_pipelines

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("columns", "key", "rows"), [
    ("id bigint PRIMARY KEY", ["id"], "g"),
    ("id citext PRIMARY KEY", ["id"], "chr(65 + g % 26) || g"),
    ("id uuid PRIMARY KEY", ["id"], "md5(g::text)::uuid"),
    ("id numeric PRIMARY KEY", ["id"], "g / 7.0"),
    ("a int, b text, PRIMARY KEY (a, b)", ["a", "b"], "g % 5, 'b' || (g % 37)"),
    ("a text, b int, c date, PRIMARY KEY (a, b, c)", ["a", "b", "c"],
     "chr(97 + g % 3), g % 4, date '2024-01-01' + g"),
], ids=["bigint", "citext", "uuid", "numeric", "int-text", "three-columns"])
@pytest.mark.parametrize("page_size", [1, 7, 1000])
async def test_every_row_is_enqueued_exactly_once(pg_dsn: str, columns: str, key: list[str],
                                                  rows: str, page_size: int) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS citext")
        await conn.execute(f"CREATE TABLE k ({columns}, body text)")
        names = ", ".join(key)
        await conn.execute(f"INSERT INTO k ({names}, body) SELECT DISTINCT ON ({names}) * FROM "
                           f"(SELECT {rows}, 'text ' || g FROM generate_series(1, 300) g) s({names}, body)")
        expected = await conn.fetchval("SELECT count(*) FROM k")
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
