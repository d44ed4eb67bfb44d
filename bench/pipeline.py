"""Pipeline throughput: rows/s from COMMIT to vector written, against the database's own limit.

For each queue and worker count, N rows are inserted in one transaction (statements of
500 rows, so each row gets its own NOTIFY), and the clock runs from COMMIT until the
workers have written all N vectors; then the same N rows are updated the same way.
The listener and worker loops run in this process, as `v10r listen
--workers-in-process W` does, with the deterministic provider (no model: v10r's own
overhead plus a hash per text), or with `--provider precomputed` its same vectors
computed before the clock starts, as the baseline's are. Baseline, in the same run: precomputed vectors written
by one batched `UPDATE … FROM unnest` loop over one connection (binary codec) — the
fastest these writes can land. ratio = pipeline / baseline (targets: ≥ 0.5 on memory
and redis, ≥ 0.3 on kafka).

With `--provider http-base64` or `http-float`, the provider is the instant
OpenAI-compatible test server (`tests/services/openai_server.py`) in its own process,
answering base64 or float lists, and the pipeline runs as deployed: on the memory queue
the listener and W worker loops here (`v10r listen --workers-in-process W`), on any other
queue the listener here and W `v10r worker` processes of one loop each. Every case
reports CPU µs per row of each process: this one (bench: the listener, and the loops on
the memory queue), each worker process, the server, PostgreSQL.

With `--faust 1,2`, the Kafka path as deployed is measured too: the listener here and
1, 2 `faust -A v10r worker` processes, an instant OpenAI-compatible HTTP server as the
provider, and the CPU time of each worker process per row.

    .venv/bin/python bench/pipeline.py [--rows N] [--queues memory,redis,rabbitmq,kafka]
                                       [--workers 1,2,4] [--faust 1,2] [--quick] [--json]
                                       [--provider deterministic,precomputed,http-base64,http-float]
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Mapping
from typing import Any

import _faust
import _harness as h
import asyncpg

from v10r.errors import V10rError
from v10r.spec.identifiers import quote_ident
from v10r.spec.model import Pipeline

PROVIDERS = ("deterministic", "precomputed", *h.HTTP_PROVIDERS)


async def run_case(svc: h.Services, kind: str, workers: int, rows: int,
                   provider: str) -> list[dict[str, Any]]:
    """Insert then update `rows` rows through one pipeline; a result per operation."""
    if provider in h.HTTP_PROVIDERS:
        return await run_http_case(svc, kind, workers, rows, provider)
    table = h.unique("pipe")
    await h.create_table(svc.dsn, table)
    target = await h.apply(h.make_pipeline(svc.dsn, table, kind))
    texts = [h.row_text(i) for i in range(rows + 1)]
    vectors = h.make_provider(provider, texts + [h.edited(t) for t in texts])
    async with h.running(target, kind, svc, workers=workers, provider=vectors) as stack:
        return await insert_then_update(svc, stack, table, kind, workers, rows, provider,
                                        h.broker_pids(kind, svc))


async def run_http_case(svc: h.Services, kind: str, workers: int, rows: int,
                        provider: str) -> list[dict[str, Any]]:
    """The OpenAI-compatible server in its own process as the provider. Memory queue: the
    listener and `workers` loops here (`v10r listen --workers-in-process`); any other
    queue: the listener here and `workers` `v10r worker` processes, as deployed."""
    table = h.unique("pipe")
    await h.create_table(svc.dsn, table)
    with h.http_server(provider) as server:
        spec = h.pipeline_spec(svc.dsn, table, kind, url=svc.queue_url(kind),
                               base_url=server.url)
        target = await h.apply(Pipeline.model_validate(spec))
        others = {"server": server.pid} | h.broker_pids(kind, svc)
        if kind == "memory":
            client = h.spec_provider(target.pipeline)
            try:
                async with h.running(target, kind, svc, workers=workers,
                                     provider=client) as stack:
                    return await insert_then_update(svc, stack, table, kind, workers, rows,
                                                    provider, others)
            finally:
                await client.aclose()
        async with h.worker_processes(target, spec, svc, workers=workers) as procs:
            return await insert_then_update(svc, procs, table, kind, workers, rows, provider,
                                            others)


async def insert_then_update(svc: h.Services, stack: h.Measured, table: str,
                             kind: str, workers: int, rows: int, provider: str,
                             others: dict[str, int] | None = None) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(svc.dsn)
    results = []
    try:
        await h.warm_up(stack, conn, table, 0)
        for op in ("insert", "update"):
            before = await h.scrape_sizes(stack)
            seconds, cpu = await timed_commit(svc, stack, conn, table, op, rows, others)
            sizes = {k: v - before[k] for k, v in (await h.scrape_sizes(stack)).items()}
            results.append({"queue": kind, "workers": workers, "op": op, "rows": rows,
                            "provider": provider,
                            "worker_processes": len(stack.pids()),
                            "seconds": round(seconds, 3),
                            "rows_per_s": round(rows / seconds, 1), **cpu,
                            **{f"rows_per_{k}": round(rows / v, 1) for k, v in sizes.items()
                               if v}})
        # The table goes with its case: autovacuum would otherwise clean up its dead rows
        # during a later case, whose PostgreSQL CPU and cores would pay for them.
        await conn.execute(f"DROP TABLE {quote_ident(table)}")
    finally:
        await conn.close()
    return results


async def run_faust_case(svc: h.Services, workers: int, rows: int,
                         delay_s: float = 0.0) -> list[dict[str, Any]]:
    """Insert then update `rows` rows through `workers` Faust worker processes, measured
    as the `v10r worker` cases are."""
    with _faust.http_provider(delay_s) as server:
        async with _faust.faust_pipeline(svc, server, workers) as stack:
            results = await insert_then_update(svc, stack, stack.table, "faust", workers,
                                               rows, f"http +{delay_s:g}s",
                                               {"server": server.pid}
                                               | h.broker_pids("faust", svc))
    return results


async def run_slow_provider_case(svc: h.Services, rows: int, delay_s: float) -> dict[str, Any]:
    """One worker loop on the memory queue, the HTTP provider answering after `delay_s`:
    rows/s against what the requests in flight allow (max_concurrency × batch / delay)."""
    from v10r.providers.factory import create_provider

    table = h.unique("slow")
    await h.create_table(svc.dsn, table)
    with _faust.http_provider(delay_s) as server:
        pipeline = h.make_pipeline(svc.dsn, table, "memory")
        embedding = pipeline.embedding.model_copy(update={"base_url": server.url})
        pipeline = pipeline.model_copy(update={"embedding": embedding})
        target = await h.apply(pipeline)
        provider = create_provider(embedding, pipeline=pipeline.name)
        conn = await asyncpg.connect(svc.dsn)
        try:
            async with h.running(target, "memory", svc, workers=1, provider=provider) as stack:
                await h.warm_up(stack, conn, table, 0)
                seconds, _ = await timed_commit(svc, stack, conn, table, "insert", rows)
        finally:
            await conn.close()
            await provider.aclose()
    concurrency = getattr(embedding, "max_concurrency", 1)
    bound = concurrency * embedding.batch_size / delay_s
    return {"queue": "memory", "workers": 1, "op": "insert", "rows": rows,
            "provider": f"http +{delay_s:g}s", "max_concurrency": concurrency,
            "batch_size": embedding.batch_size, "seconds": round(seconds, 3),
            "rows_per_s": round(rows / seconds, 1), "bound_rows_per_s": round(bound, 1),
            "of_bound": round(rows / seconds / bound, 3)}


async def timed_commit(svc: h.Services, stack: h.Measured,
                       conn: asyncpg.Connection, table: str, op: str, rows: int,
                       others: dict[str, int] | None = None) -> tuple[float, dict[str, Any]]:
    """Seconds from COMMIT of `rows` changes until their vectors are written, and the
    CPU use of v10r and PostgreSQL meanwhile (µs per row of each process)."""
    before = await stack.processed()
    transaction = conn.transaction()
    await transaction.start()
    ids = range(1, rows + 1)
    if op == "insert":
        await h.insert_rows(conn, table, ids)
    else:
        await h.update_rows(conn, table, ids)
    committed = time.perf_counter()
    meter = h.CpuMeter(svc.pg, stack.pids() | (others or {}))
    await transaction.commit()
    done = await stack.wait_written(before + rows, timeout=max(60.0, rows / 100))
    seconds = done - committed
    return seconds, meter.percent(seconds) | {"cpu_us_per_row": meter.per_row(rows)}


async def run(args: Any) -> dict[str, Any]:
    rows = args.rows or (300 if args.quick else 20_000)
    queues = h.parse_list(args.queues or ("memory,redis" if args.quick else ",".join(h.QUEUES)),
                          h.QUEUES)
    workers = [int(w) for w in h.parse_list(args.workers or ("1" if args.quick else "1,2,4"))]
    faust = [int(w) for w in h.parse_list(args.faust or "")]
    providers = h.parse_list(args.provider, PROVIDERS)
    async with h.services(kafka="kafka" in queues or bool(faust)) as svc:
        baseline = [await h.baseline_write(svc.dsn, rows)]
        results = []
        for provider in providers:
            for kind in queues:
                for count in workers:
                    try:
                        results += await run_case(svc, kind, count, rows, provider)
                    except (TimeoutError, RuntimeError, V10rError) as exc:
                        # one stuck case must not sink the run
                        results.append({"queue": kind, "workers": count, "op": "insert+update",
                                        "rows": rows, "provider": provider, "error": str(exc)})
        if args.http_delay:
            slow = await run_slow_provider_case(svc, rows, args.http_delay)
            print(f"one worker loop, provider +{args.http_delay:g}s: {slow['rows_per_s']:,.0f} "
                  f"rows/s = {slow['of_bound']:.2f} of {slow['bound_rows_per_s']:,.0f} "
                  f"(max_concurrency {slow['max_concurrency']} × batch "
                  f"{slow['batch_size']} / delay)", file=sys.stderr)
            results.append(slow)
        for count in faust:
            try:
                results += await run_faust_case(svc, count, rows, args.http_delay)
            except (TimeoutError, V10rError) as exc:
                results.append({"queue": "faust", "workers": count, "op": "insert+update",
                                "rows": rows, "error": str(exc)})
        baseline.append(await h.baseline_write(svc.dsn, rows))
        versions = await h.server_versions(svc.dsn)
    best = max(baseline)
    for result in results:
        result["baseline_rows_per_s"] = round(best, 1)
        if "rows_per_s" in result:
            result["ratio"] = round(result["rows_per_s"] / best, 3)
    return {"benchmark": "pipeline", "quick": args.quick, "rows": rows, "queues": queues,
            "workers": workers, "provider": ",".join(providers),
            "kafka_worker": "KafkaQueue adapter",
            "baseline_rows_per_s": [round(b, 1) for b in baseline],
            "machine": h.machine() | versions, "results": results}


def render(report: Mapping[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"pipeline: {report['rows']:,} rows, {report['provider']} provider, "
                        "COMMIT → vector written "
                        f"(baseline {max(report['baseline_rows_per_s']):,.0f} rows/s)")
    for column in ("queue", "provider", "workers", "op", "seconds", "rows/s", "ratio",
                   "CPU µs/row: bench", "workers", "PG", "server", "broker"):
        table.add_column(column, justify="right")
    for r in report["results"]:
        name = str(r["workers"]) + (" proc" if r.get("worker_processes") else "")
        if "error" in r:
            table.add_row(r["queue"], r.get("provider", ""), name, r["op"], "—",
                          "failed: " + r["error"], "", "", "", "", "", "")
            continue
        cpu = r.get("cpu_us_per_row", {})
        workers = [v for k, v in cpu.items() if k.startswith("worker")]
        table.add_row(r["queue"], r["provider"], name, r["op"], f"{r['seconds']:.2f}",
                      f"{r['rows_per_s']:,.0f}", f"{r['ratio']:.3f}",
                      str(cpu.get("bench", "")), " + ".join(map(str, workers)),
                      str(cpu.get("postgres", "")),
                      str(cpu.get("server", "")), str(cpu.get("broker", "")))
    Console(width=160).print(table)


def main() -> None:
    parser = h.base_parser(__doc__)
    parser.add_argument("--rows", type=int, default=None, help="rows per case (default 20000)")
    parser.add_argument("--queues", default=None, help="comma-separated queue kinds")
    parser.add_argument("--workers", default=None,
                        help="comma-separated worker counts: loops in this process, or with an "
                        "http provider on a broker queue, `v10r worker` processes")
    parser.add_argument("--faust", default=None,
                        help="comma-separated counts of `faust -A v10r worker` processes")
    parser.add_argument("--http-delay", type=float, default=0.0,
                        help="seconds the HTTP provider takes per request (faust cases), "
                        "and a one-loop case against max_concurrency × batch / delay")
    parser.add_argument("--provider", default="deterministic", metavar="P[,P...]",
                        help="comma-separated, each case run with each: deterministic "
                        "(in-process, a shake_256 digest per text); precomputed (its vectors "
                        "computed before the clock starts: v10r's overhead alone, like the "
                        "baseline); http-base64 / http-float (the OpenAI-compatible test "
                        "server in its own process, answering base64 / float lists; memory "
                        "runs the worker loops here, other queues run --workers `v10r "
                        "worker` processes)")
    args = parser.parse_args()
    h.quiet_logs()
    h.emit(asyncio.run(run(args)), args.json, render)


if __name__ == "__main__":
    main()
