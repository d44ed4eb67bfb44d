"""Catch-up: rows/s and resident memory of the start-up scan (+ workers) over a table of
N rows with no vectors.

The rows are loaded before `apply`, so no notification exists for them: only the
catch-up scan finds them. The clock runs from starting the listener (scan on start)
with in-process workers until every row has its vector; the process's RSS is sampled
every 50 ms and shown when 25%, 50% and 100% of the rows are done — flat means memory
does not grow with the table. Baseline, in the same run: the same writes as one
batched `UPDATE … FROM unnest` loop of precomputed vectors. ratio = catch-up / baseline.

    .venv/bin/python bench/catchup.py [--rows 200000] [--queue memory|redis|rabbitmq|kafka]
                                      [--workers 2] [--quick] [--json]
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import _harness as h
import asyncpg
import psutil

from v10r.spec.identifiers import quote_ident

MB = 2**20
SAMPLE_S = 0.05


async def load_rows(dsn: str, table: str, rows: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"INSERT INTO {quote_ident(table)} (id, body) "
                           "SELECT i, 'row ' || i || ': a short product description with a few "
                           "words about item ' || i FROM generate_series(1, $1::int) AS i", rows)
        await conn.execute(f"ANALYZE {quote_ident(table)}")
    finally:
        await conn.close()


async def sample(stack: h.Stack, samples: list[tuple[int, float]], stop: asyncio.Event) -> None:
    process = psutil.Process()
    while not stop.is_set():
        samples.append((stack.written, process.memory_info().rss / MB))
        await asyncio.sleep(SAMPLE_S)


def rss_at(samples: list[tuple[int, float]], done: int) -> float:
    """RSS of the first sample with at least `done` rows written (the last one otherwise)."""
    return next((rss for written, rss in samples if written >= done), samples[-1][1])


async def run_catchup(svc: h.Services, kind: str, rows: int, workers: int) -> dict[str, Any]:
    table = h.unique("catchup")
    await h.create_table(svc.dsn, table)
    await load_rows(svc.dsn, table, rows)
    target = await h.apply(h.make_pipeline(svc.dsn, table, kind, url=svc.queue_url(kind)))
    samples: list[tuple[int, float]] = []
    rss_before = psutil.Process().memory_info().rss / MB
    stop = asyncio.Event()
    started = time.perf_counter()
    async with h.running(target, kind, svc, workers=workers, catchup=True) as stack:
        sampler = asyncio.create_task(sample(stack, samples, stop))
        done = await stack.wait_written(rows)
        stop.set()
        await sampler
        samples.append((stack.written, psutil.Process().memory_info().rss / MB))
    seconds = done - started
    return {"queue": kind, "workers": workers, "rows": rows, "seconds": round(seconds, 2),
            "rows_per_s": round(rows / seconds, 1), "rss_before_mb": round(rss_before, 1),
            "peak_rss_mb": round(max(rss for _, rss in samples), 1),
            "rss_mb_at": {f"{p}%": round(rss_at(samples, rows * p // 100), 1)
                          for p in (25, 50, 100)}}


async def run(args: Any) -> dict[str, Any]:
    rows = args.rows or (2_000 if args.quick else 200_000)
    kind = args.queue
    async with h.services(kafka=kind == "kafka") as svc:
        result = await run_catchup(svc, kind, rows, args.workers)
        # after the run: the baseline's arrays would count in RSS
        return await against_baseline("catchup", args, svc, result, rows)


async def against_baseline(name: str, args: Any, svc: h.Services, result: dict[str, Any],
                           rows: int) -> dict[str, Any]:
    """The report: `result` with the baseline's rows/s over `rows` rows, and the ratio."""
    baseline = await h.baseline_write(svc.dsn, rows)
    result["baseline_rows_per_s"] = round(baseline, 1)
    result["ratio"] = round(result["rows_per_s"] / baseline, 3)
    return {"benchmark": name, "quick": args.quick, "rows": result["rows"],
            "provider": "deterministic",
            "machine": h.machine() | await h.server_versions(svc.dsn), "results": [result]}


def render(report: Mapping[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"catch-up scan + workers: {report['rows']:,} rows without vectors")
    for column in ("queue", "workers", "seconds", "rows/s", "baseline rows/s", "ratio",
                   "RSS before", "RSS 25%", "RSS 50%", "RSS 100%", "peak RSS"):
        table.add_column(column, justify="right")
    for r in report["results"]:
        at = r["rss_mb_at"]
        table.add_row(r["queue"], str(r["workers"]), f"{r['seconds']:.1f}",
                      f"{r['rows_per_s']:,.0f}", f"{r['baseline_rows_per_s']:,.0f}",
                      f"{r['ratio']:.2f}", f"{r['rss_before_mb']:.0f} MB",
                      f"{at['25%']:.0f} MB", f"{at['50%']:.0f} MB", f"{at['100%']:.0f} MB",
                      f"{r['peak_rss_mb']:.0f} MB")
    Console(width=160).print(table)


def table_bench(doc: str, rows: int, queue: str) -> Any:
    """The arguments of a benchmark over a table of `--rows` rows without vectors."""
    parser = h.base_parser(doc)
    parser.add_argument("--rows", type=int, default=None, help=f"rows (default {rows})")
    parser.add_argument("--queue", default=queue, choices=h.QUEUES)
    parser.add_argument("--workers", type=int, default=2, help="worker loops")
    args = parser.parse_args()
    h.quiet_logs()
    return args


def main() -> None:
    args = table_bench(__doc__, 200_000, "memory")
    h.emit(asyncio.run(run(args)), args.json, render)


if __name__ == "__main__":
    main()
