"""Helpers for listener tests: tables with applied pipelines on the real PostgreSQL+pgvector, and a listener
running in the background of a test."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from v10r.compile.names import pipeline_names
from v10r.listen.listener import Listener, ListenerSettings
from v10r.listen.targets import Target
from v10r.queues.base import Queue
from v10r.reconcile import apply_pipelines
from v10r.spec.identifiers import quote_ident
from v10r.spec.model import Pipeline

WAIT_S = 20.0  # upper bound of every wait in these tests


def make_pipeline(dsn: str, table: str, *, window_ms: int = 100,
                  bulk_threshold: int | None = 1000, **source: Any) -> Pipeline:
    return Pipeline.model_validate({
        "name": f"p_{uuid.uuid4().hex[:10]}",
        "database": {"name": "test", "dsn": dsn},
        "source": {"table": f"public.{table}", "key": "id", "columns": ["body"], **source},
        "embedding": {"provider": "custom", "base_url": "http://127.0.0.1:9/v1",
                      "model": "fake", "dimensions": 3},
        "target": {"index": "none"},
        "queue": {"kind": "memory", "dedup_window_ms": window_ms},
        "trigger": {"bulk_threshold": bulk_threshold},
    })


async def apply(dsn: str, pipeline: Pipeline) -> None:
    """Create v10r's objects for `pipeline`, as `v10r apply` does."""
    await apply_pipelines([pipeline])


@dataclass
class Table:
    """A `public.<name> (id bigint primary key, body text)` table with an applied pipeline."""

    dsn: str
    name: str
    pipeline: Pipeline

    @property
    def target(self) -> Target:
        return Target.of(self.pipeline)

    async def execute(self, sql: str, *args: Any) -> Any:
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.execute(sql.replace("{t}", quote_ident(self.name)), *args)
        finally:
            await conn.close()

    async def insert(self, ids: range) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.executemany(f"INSERT INTO {quote_ident(self.name)} (id, body) "
                                   "VALUES ($1, $2)", [(i, f"text {i}") for i in ids])
        finally:
            await conn.close()


@pytest.fixture
def make_table(pg_dsn: str) -> Callable[..., Awaitable[Table]]:
    async def make(*, applied: bool = True, **options: Any) -> Table:
        name = f"docs_{uuid.uuid4().hex[:8]}"
        conn = await asyncpg.connect(pg_dsn)
        try:
            await conn.execute(f"CREATE TABLE {quote_ident(name)} "
                               "(id bigint PRIMARY KEY, body text, status text DEFAULT 'on')")
        finally:
            await conn.close()
        pipeline = make_pipeline(pg_dsn, name, **options)
        if applied:
            await apply(pg_dsn, pipeline)
        return Table(pg_dsn, name, pipeline)

    return make


@contextlib.asynccontextmanager
async def running(listener: Listener) -> AsyncIterator[Listener]:
    """The listener in a background task, LISTENing before the body runs."""
    stop = asyncio.Event()
    task = asyncio.create_task(listener.run(stop))
    try:
        await wait_until(lambda: listener.listening.is_set() or task.done())
        if task.done():
            task.result()
        yield listener
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT_S)


async def wait_until(condition: Callable[[], bool], timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def collect_ids(queue: Queue, pipeline: str, expected: set[Any],
                      timeout: float = WAIT_S) -> list[Any]:
    """Consume (and ack) tasks until every expected id was seen; returns all ids seen."""
    seen: list[Any] = []
    deadline = time.monotonic() + timeout
    while not expected <= set(seen):
        if time.monotonic() > deadline:
            missing = sorted(expected - set(seen))[:10]
            raise AssertionError(f"{len(expected - set(seen))} ids never arrived: {missing}")
        deliveries = await queue.consume(pipeline, 500, 0.2)
        seen.extend(d.task.id for d in deliveries)
        if deliveries:
            await queue.ack(pipeline, deliveries)
    return seen


def fast_settings(**overrides: Any) -> ListenerSettings:
    return ListenerSettings(**{"health_interval_s": 0.5, "backoff_initial_s": 0.05,
                               "backoff_max_s": 0.5, **overrides})


__all__ = ["Table", "apply", "collect_ids", "fast_settings", "make_pipeline", "pipeline_names",
           "running", "wait_until"]


# Key types a keyset scan must page through: (columns, key, the key values of row g).
KEY_TYPES = [
    ("id bigint PRIMARY KEY", ["id"], "g"),
    ("id citext PRIMARY KEY", ["id"], "chr(65 + g % 26) || g"),
    ("id uuid PRIMARY KEY", ["id"], "md5(g::text)::uuid"),
    ("id numeric PRIMARY KEY", ["id"], "g / 7.0"),
    ("a int, b text, PRIMARY KEY (a, b)", ["a", "b"], "g % 5, 'b' || (g % 37)"),
    ("a text, b int, c date, PRIMARY KEY (a, b, c)", ["a", "b", "c"],
     "chr(97 + g % 3), g % 4, date '2024-01-01' + g"),
]
KEY_TYPE_IDS = ["bigint", "citext", "uuid", "numeric", "int-text", "three-columns"]


async def make_key_table(conn, columns: str, key: list[str], rows: str) -> int:
    """Table `k` with up to 300 rows of distinct keys; returns how many."""
    await conn.execute("CREATE EXTENSION IF NOT EXISTS citext")
    await conn.execute(f"CREATE TABLE k ({columns}, body text)")
    names = ", ".join(key)
    await conn.execute(f"INSERT INTO k ({names}, body) SELECT DISTINCT ON ({names}) * FROM "
                       f"(SELECT {rows}, 'text ' || g FROM generate_series(1, 300) g) s({names}, body)")
    return await conn.fetchval("SELECT count(*) FROM k")

