"""How the guarded write meets a large table: its guard (the row's current text still
hashes to what the vector was computed from) is checked on the rows a batch's keys
found, never used to find them.

For a few hundred keys on a table of some ten thousand rows the planner may prefer a
hash join over a scan of the table; were the guard a join key, that join would hash the
text of every row in the table, for every batch."""

from __future__ import annotations

import json

import asyncpg
import numpy as np
import pytest

from tests.integration.work.conftest import (
    DIMENSIONS,
    FakeProvider,
    create_table,
    make_pipeline,
)
from v10r.work.core import BatchProcessor
from v10r.work.vectors import encode_rows

pytestmark = pytest.mark.integration

TABLE_ROWS = 20_000


def conditions(plan: dict, found: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """Every (node type, condition) of a JSON plan: join keys, join filters, filters."""
    found = [] if found is None else found
    for key in ("Hash Cond", "Merge Cond", "Join Filter", "Filter", "Index Cond"):
        if key in plan:
            found.append((key, plan[key]))
    for child in plan.get("Plans", []):
        conditions(child, found)
    return found


@pytest.mark.parametrize("batch", [10, 500, 5_000])
async def test_the_write_guard_only_filters_the_rows_the_keys_found(
        db: asyncpg.Connection, pool: asyncpg.Pool, batch: int) -> None:
    pipeline = make_pipeline(table="public.big_docs", name="big_docs")
    names = await create_table(db, pipeline)
    await db.execute("INSERT INTO big_docs (id, body) SELECT i, 'row number ' || i "
                     f"FROM generate_series(1, {TABLE_ROWS}) i")
    await db.execute("ANALYZE big_docs")  # the planner knows how big the table is
    statements = await BatchProcessor(pipeline, names, pool, pool, FakeProvider())._prepare()
    vectors = encode_rows(np.ones((batch, DIMENSIONS), np.float32), pipeline.target.type)
    args = [[str(i) for i in range(1, batch + 1)], vectors, ["stored"] * batch,
            ["source"] * batch, [None] * batch, list(range(batch)), "fake-model"]

    plan = json.loads(await db.fetchval(f"EXPLAIN (FORMAT JSON) {statements.write}", *args))
    found = conditions(plan[0]["Plan"])

    guards = [(kind, text) for kind, text in found if "sha256" in text]
    assert guards, found
    assert all(kind in ("Filter", "Join Filter") for kind, _ in guards), guards
