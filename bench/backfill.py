"""Backfill: rows/s of `v10r backfill` (bookmarked keyset scan publishing batched
messages) with worker loops embedding them, over a table of N rows with no vectors.

The rows are loaded before `apply`, so no notification exists for them; the clock runs
from the start of the backfill until every row has its vector (in-process deterministic
provider: no network, the "instant" provider). Baseline, in the same run: the same
writes as one batched `UPDATE … FROM unnest` loop of precomputed vectors.
ratio = backfill / baseline.

    .venv/bin/python bench/backfill.py [--rows 1000000] [--queue memory|redis|rabbitmq|kafka]
                                       [--workers 2] [--quick] [--json]
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import _harness as h
import asyncpg
from catchup import against_baseline, load_rows, table_bench

from v10r.listen.backfill import backfill_target

BASELINE_ROWS = 200_000  # the baseline's rate is flat beyond this; its arrays are in memory


async def run_backfill(svc: h.Services, kind: str, rows: int, workers: int) -> dict[str, Any]:
    table = h.unique("backfill")
    await h.create_table(svc.dsn, table)
    await load_rows(svc.dsn, table, rows)
    target = await h.apply(h.make_pipeline(svc.dsn, table, kind, url=svc.queue_url(kind)))
    conn = await asyncpg.connect(svc.dsn)
    try:
        async with h.running(target, kind, svc, workers=workers) as stack:
            assert stack.listener is not None
            queue = stack.listener.queue  # the workers' client: publishing is what it does
            started = time.perf_counter()
            outcome = await backfill_target(conn, target, queue)
            published = time.perf_counter()
            done = await stack.wait_written(rows)
    finally:
        await conn.close()
    seconds = done - started
    return {"queue": kind, "workers": workers, "rows": rows, "enqueued": outcome.enqueued,
            "publish_s": round(published - started, 2), "seconds": round(seconds, 2),
            "rows_per_s": round(rows / seconds, 1)}


async def run(args: Any) -> dict[str, Any]:
    rows = args.rows or (5_000 if args.quick else 1_000_000)
    async with h.services(kafka=args.queue == "kafka") as svc:
        result = await run_backfill(svc, args.queue, rows, args.workers)
        return await against_baseline("backfill", args, svc, result, min(rows, BASELINE_ROWS))


def render(report: Mapping[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"v10r backfill + workers: {report['rows']:,} rows without vectors")
    for column in ("queue", "workers", "published in", "all embedded in", "rows/s",
                   "baseline rows/s", "ratio"):
        table.add_column(column, justify="right")
    for r in report["results"]:
        table.add_row(r["queue"], str(r["workers"]), f"{r['publish_s']:.1f} s",
                      f"{r['seconds']:.1f} s", f"{r['rows_per_s']:,.0f}",
                      f"{r['baseline_rows_per_s']:,.0f}", f"{r['ratio']:.3f}")
    Console(width=160).print(table)


def main() -> None:
    args = table_bench(__doc__, 1_000_000, "redis")
    h.emit(asyncio.run(run(args)), args.json, render)


if __name__ == "__main__":
    main()
