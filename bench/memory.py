"""Memory: peak RSS of a `v10r listen` process and a `v10r worker` process at steady
state under a light load (redis queue, local model), as users run them.

Both run as real subprocesses of the CLI. After one warm-up row (the worker loads the
model on its first batch), rows are inserted at `--rate` rows/s for `--seconds`; each
process's RSS is sampled every 100 ms. Baselines, in the same run: a bare interpreter
that imports v10r's CLI, and one that only loads the local model and embeds one batch
("the model"). Targets: listener < 100 MB, worker < 200 MB + the model.

    .venv/bin/python bench/memory.py [--rate 5] [--seconds 20] [--quick] [--json]
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import _harness as h
import asyncpg

from v10r.spec.identifiers import quote_ident

MB = h.MB
SPEC = """\
version: 1
name: {name}
database:
  dsn: ${{DATABASE_URL}}
source:
  table: public.{table}
  columns: [body]
embedding:
  provider: local
target:
  index: none
queue:
  kind: redis
"""
MODEL_ONLY = ("from v10r.providers.local import LocalModel; import psutil; "
              "LocalModel().embed(['warm up text'] * 8); "
              "print(psutil.Process().memory_info().rss)")
CLI_ONLY = "import v10r.cli, psutil; print(psutil.Process().memory_info().rss)"


def rss_of(code: str) -> float:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True, cwd=h.ROOT,
                          env={**os.environ, "PYTHONPATH": str(h.ROOT)})
    return int(done.stdout.strip().splitlines()[-1]) / MB


async def embedded_count(conn: asyncpg.Connection, table: str) -> int:
    return await conn.fetchval(f"SELECT count(*) FROM {quote_ident(table)} "
                               "WHERE body_embedding IS NOT NULL")


async def wait_embedded(conn: asyncpg.Connection, table: str, count: int,
                        timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while (done := await embedded_count(conn, table)) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return done


async def load(procs: list[h.Watched], conn: asyncpg.Connection, table: str, rate: float,
               count: int) -> None:
    """Insert `count` rows at `rate`/s, sampling every process's RSS on the way."""
    started = time.perf_counter()
    next_row = 0
    while next_row < count:
        if time.perf_counter() - started >= next_row / rate:
            await h.insert_rows(conn, table, range(next_row + 2, next_row + 3))
            next_row += 1
        for proc in procs:
            proc.sample()
        await asyncio.sleep(0.1)


async def measure(svc: h.Services, workdir: Path, rate: float, count: int) -> dict[str, Any]:
    table, name = h.unique("mem"), h.unique("mem")
    spec = workdir / "pipeline.yaml"
    spec.write_text(SPEC.format(name=name, table=table))
    await h.create_table(svc.dsn, table)
    env = {**os.environ, "DATABASE_URL": svc.dsn, "V10R_REDIS_URL": h.REDIS_URL,
           "PYTHONPATH": str(h.ROOT)}
    os.environ["DATABASE_URL"] = svc.dsn
    from v10r.spec.load import load_pipelines

    await h.apply_pipelines(load_pipelines([spec]))
    procs = [h.launch("listener", ["listen", str(spec)], env, workdir),
             h.launch("worker", ["worker", str(spec), "--workers", "1"], env, workdir)]
    conn = await asyncpg.connect(svc.dsn)
    try:
        await procs[0].wait_for("listening for")
        await procs[1].wait_for("v10r worker:")
        await h.insert_rows(conn, table, range(1, 2))
        await wait_embedded(conn, table, 1)
        await load(procs, conn, table, rate, count)
        embedded = await wait_embedded(conn, table, count + 1)
    finally:
        await conn.close()
        for proc in procs:
            proc.stop()
        await drop_streams(name)
    return {"rows": count + 1, "embedded": embedded,
            **{f"{p.name}_peak_rss_mb": round(max(p.samples, default=0), 1) for p in procs},
            **{f"{p.name}_final_rss_mb": round(p.samples[-1] if p.samples else 0, 1)
               for p in procs}}


async def drop_streams(pipeline: str) -> None:
    from v10r.queues.redis import RedisQueue

    queue = RedisQueue(h.REDIS_URL, pipelines=[pipeline])
    await queue.start()
    try:
        await queue.drop(pipeline)
    finally:
        await queue.close()


async def run(args: Any) -> dict[str, Any]:
    seconds = args.seconds or (3.0 if args.quick else 20.0)
    count = max(1, round(args.rate * seconds))
    workdir = Path(tempfile.mkdtemp(prefix="v10r-bench-mem-"))
    cli_rss = await asyncio.to_thread(rss_of, CLI_ONLY)
    model_rss = await asyncio.to_thread(rss_of, MODEL_ONLY)
    try:
        async with h.services() as svc:
            result = await measure(svc, workdir, args.rate, count)
            versions = await h.server_versions(svc.dsn)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result |= {"cli_import_rss_mb": round(cli_rss, 1), "model_rss_mb": round(model_rss, 1),
               "listener_target_mb": 100, "worker_target_mb": round(200 + model_rss, 1)}
    return {"benchmark": "memory", "quick": args.quick, "queue": "redis", "provider": "local",
            "rate_per_s": args.rate, "seconds": seconds, "machine": h.machine() | versions,
            "results": [result]}


def render(report: Mapping[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    r = report["results"][0]
    table = Table(title=f"memory at steady state: {r['rows']} rows at {report['rate_per_s']:g}/s, "
                        f"redis queue, local model ({r['embedded']} embedded)")
    for column in ("process", "peak RSS", "final RSS", "target", "baseline"):
        table.add_column(column, justify="right")
    table.add_row("v10r listen", f"{r['listener_peak_rss_mb']:.0f} MB",
                  f"{r['listener_final_rss_mb']:.0f} MB", "< 100 MB",
                  f"python + v10r CLI imports: {r['cli_import_rss_mb']:.0f} MB")
    table.add_row("v10r worker", f"{r['worker_peak_rss_mb']:.0f} MB",
                  f"{r['worker_final_rss_mb']:.0f} MB", f"< {r['worker_target_mb']:.0f} MB",
                  f"python + the model alone: {r['model_rss_mb']:.0f} MB")
    Console(width=160).print(table)


def main() -> None:
    parser = h.base_parser(__doc__)
    parser.add_argument("--rate", type=float, default=5.0, help="rows per second")
    parser.add_argument("--seconds", type=float, default=None, help="how long (default 20)")
    args = parser.parse_args()
    h.quiet_logs()
    h.emit(asyncio.run(run(args)), args.json, render)


if __name__ == "__main__":
    main()
