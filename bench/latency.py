"""Latency: COMMIT of a single-row INSERT → its vector visible, at a light steady rate.

Rows are inserted one per transaction at `--rate` rows/s for `--seconds`; a trigger
added to the benchmark's table sends a NOTIFY when the row's vector is written, so the
moment of visibility is observed by a LISTEN connection instead of a polling loop.
Listener and one worker loop run in this process with the deterministic provider; the
`faust` case runs the listener here and one `faust -A v10r worker` process, with an
instant OpenAI-compatible HTTP server as the provider (target p50 < 20 ms, p99 < 50 ms).
Baseline, in the same run: the raw round trip of one INSERT + one SELECT of that row —
the least any "write, then see it" path can cost. Targets: p50 < 10 ms, p99 < 50 ms on
memory and redis.

Before the measured rows, rows at the same pace for `--warm-s` seconds (default 1) are
not measured: the figures are the steady state, not a new worker's first second.

    .venv/bin/python bench/latency.py [--rate 20] [--seconds 10] [--warm-s 1] [--queues ...]
                                      [--quick] [--json]
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import _faust
import _harness as h
import asyncpg

from v10r.spec.identifiers import quote_ident, quote_literal

KINDS = (*h.QUEUES, "faust")  # faust: kafka with `faust -A v10r worker`
SEEN_FUNCTION = """
CREATE OR REPLACE FUNCTION bench_seen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify(TG_ARGV[0], NEW.id::text);
  RETURN NULL;
END $$"""


async def watch_writes(conn: asyncpg.Connection, table: str, seen: dict[int, float]) -> None:
    """Record when each row's vector is committed, via a NOTIFY from a trigger."""
    channel = f"seen_{table}"
    await conn.execute(SEEN_FUNCTION)
    await conn.execute(f"CREATE TRIGGER bench_seen AFTER UPDATE OF body_embedding ON "
                       f"{quote_ident(table)} FOR EACH ROW WHEN (NEW.body_embedding IS NOT NULL) "
                       f"EXECUTE FUNCTION bench_seen({quote_literal(channel)})")
    await conn.add_listener(channel, lambda *a: seen.setdefault(int(a[3]), time.perf_counter()))


async def paced(rate: float, count: int, action) -> None:  # type: ignore[no-untyped-def]
    """Call `action(i)` `count` times at `rate` per second, on a fixed schedule."""
    started = time.perf_counter()
    for i in range(count):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await action(i)


async def measure(writer: asyncpg.Connection, watcher: asyncpg.Connection, table: str,
                  rate: float, count: int, warm_s: float) -> list[float]:
    """Latencies (seconds) of `count` paced single-row inserts into `table`.

    Rows paced the same way for `warm_s` seconds go first and are not measured: a new
    worker's first second is not the steady state (the embedded broker answers its
    first fetches after ~100 ms while Faust still reads its tables' changelogs)."""
    warm = round(rate * warm_s)
    committed: dict[int, float] = {}
    seen: dict[int, float] = {}
    await watch_writes(watcher, table, seen)

    async def insert(i: int) -> None:
        await writer.execute(f"INSERT INTO {quote_ident(table)} (id, body) VALUES ($1, $2)",
                             i + 1, h.row_text(i + 1))
        if i >= warm:
            committed[i + 1] = time.perf_counter()

    await paced(rate, warm + count, insert)
    deadline = time.monotonic() + 60
    while sum(1 for i in committed if i in seen) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return [seen[i] - committed[i] for i in committed if i in seen]


async def run_queue(svc: h.Services, kind: str, rate: float, count: int,
                    warm_s: float) -> list[float]:
    """Latencies (seconds) of `count` single-row inserts through one pipeline."""
    table = h.unique("lat")
    await h.create_table(svc.dsn, table)
    target = await h.apply(h.make_pipeline(svc.dsn, table, kind))
    watcher, writer = await asyncpg.connect(svc.dsn), await asyncpg.connect(svc.dsn)
    try:
        async with h.running(target, kind, svc, workers=1) as stack:
            await h.warm_up(stack, writer, table, 0)
            return await measure(writer, watcher, table, rate, count, warm_s)
    finally:
        await watcher.close()
        await writer.close()


async def run_faust(svc: h.Services, rate: float, count: int, warm_s: float) -> list[float]:
    """Latencies (seconds) of `count` single-row inserts through one Faust worker."""
    with _faust.http_provider() as server:
        async with _faust.faust_pipeline(svc, server, workers=1) as stack:
            watcher, writer = await asyncpg.connect(svc.dsn), await asyncpg.connect(svc.dsn)
            try:
                await h.warm_up(stack, writer, stack.table, 0)
                return await measure(writer, watcher, stack.table, rate, count, warm_s)
            finally:
                await watcher.close()
                await writer.close()


async def round_trips(dsn: str, rate: float, count: int) -> list[float]:
    """Baseline: INSERT one row, then SELECT it, at the same pace."""
    table = h.unique("rt")
    await h.create_table(dsn, table)
    conn = await asyncpg.connect(dsn)
    times: list[float] = []

    async def once(i: int) -> None:
        started = time.perf_counter()
        await conn.execute(f"INSERT INTO {quote_ident(table)} (id, body) VALUES ($1, $2)",
                           i, h.row_text(i))
        await conn.fetchval(f"SELECT body FROM {quote_ident(table)} WHERE id = $1", i)
        times.append(time.perf_counter() - started)

    try:
        await paced(rate, count, once)
    finally:
        await conn.close()
    return times


def summary(values: list[float]) -> dict[str, float]:
    return {"count": len(values),
            **{f"p{q}_ms": round(h.percentile(values, q / 100) * 1e3, 2) for q in (50, 95, 99)},
            "max_ms": round(max(values, default=0) * 1e3, 2)}


async def run(args: Any) -> dict[str, Any]:
    rate = args.rate
    seconds = args.seconds or (1.0 if args.quick else 10.0)
    count = max(1, round(rate * seconds))
    queues = h.parse_list(args.queues or ("memory,redis" if args.quick else ",".join(KINDS)),
                          KINDS)
    async with h.services(kafka=bool({"kafka", "faust"} & set(queues))) as svc:
        baseline = summary(await round_trips(svc.dsn, rate, count))
        results = []
        for kind in queues:
            latencies = await (run_faust(svc, rate, count, args.warm_s) if kind == "faust"
                               else run_queue(svc, kind, rate, count, args.warm_s))
            result = {"queue": kind, **summary(latencies)}
            result["p50_over_baseline_ms"] = round(result["p50_ms"] - baseline["p50_ms"], 2)
            results.append(result)
        versions = await h.server_versions(svc.dsn)
    return {"benchmark": "latency", "quick": args.quick, "rate_per_s": rate,
            "seconds": seconds, "rows": count, "warm_up_s": args.warm_s,
            "provider": "deterministic (faust: instant HTTP server)",
            "baseline": {"what": "INSERT + SELECT round trip", **baseline},
            "machine": h.machine() | versions, "results": results}


def render(report: Mapping[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    b = report["baseline"]
    table = Table(title=f"latency: COMMIT → vector visible, {report['rows']} rows at "
                        f"{report['rate_per_s']:g}/s (baseline INSERT+SELECT p50 "
                        f"{b['p50_ms']:.2f} ms, p99 {b['p99_ms']:.2f} ms)")
    for column in ("queue", "rows", "p50 ms", "p95 ms", "p99 ms", "max ms", "p50 − baseline"):
        table.add_column(column, justify="right")
    for r in report["results"]:
        table.add_row(r["queue"], str(r["count"]), f"{r['p50_ms']:.2f}", f"{r['p95_ms']:.2f}",
                      f"{r['p99_ms']:.2f}", f"{r['max_ms']:.2f}",
                      f"{r['p50_over_baseline_ms']:.2f}")
    Console(width=160).print(table)


def main() -> None:
    parser = h.base_parser(__doc__)
    parser.add_argument("--rate", type=float, default=20.0, help="rows per second")
    parser.add_argument("--seconds", type=float, default=None, help="how long (default 10)")
    parser.add_argument("--queues", default=None, help="comma-separated queue kinds")
    parser.add_argument("--warm-s", type=float, default=1.0,
                        help="seconds of paced rows before the measured ones (not measured)")
    args = parser.parse_args()
    h.quiet_logs()
    h.emit(asyncio.run(run(args)), args.json, render)


if __name__ == "__main__":
    main()
