"""Model-bound throughput: rows/s through the whole pipeline with the local model, against
the raw model's texts/s on the same texts and batches, in the same run.

N rows of 5–120 words are inserted in one transaction; the clock runs from COMMIT until
every vector is written (memory queue, listener and one worker loop in this process,
the `local` provider: int8 all-MiniLM-L6-v2 on ONNX Runtime). The raw model embeds the
same texts grouped as the worker groups them (batches of 256 tasks, split by length into
model batches of 64) with `LocalModel.embed` — tokenize, infer, pool — and nothing
else; it runs once before and once after the pipeline, and the mean counts.
ratio = pipeline / raw (target ≥ 0.9).

    .venv/bin/python bench/model.py [--rows 500] [--quick] [--json]
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import _harness as h
import asyncpg
from providers import make_texts

from v10r.providers.batching import plan_batches
from v10r.providers.local import LocalModel, LocalProvider, physical_cores
from v10r.work.runner import DEFAULT_BATCH_SIZE

MODEL_BATCH = 64


def raw_rate(model: LocalModel, texts: Sequence[str]) -> float:
    """texts/s of the bare model over the worker's grouping of `texts`."""
    started = time.perf_counter()
    for start in range(0, len(texts), DEFAULT_BATCH_SIZE):
        chunk = texts[start:start + DEFAULT_BATCH_SIZE]
        for batch in plan_batches([len(t) for t in chunk], max_batch_size=MODEL_BATCH,
                                  max_batch_chars=MODEL_BATCH * 32_000, by_length=True):
            model.embed([chunk[i] for i in batch])
    return len(texts) / (time.perf_counter() - started)


async def pipeline_rate(svc: h.Services, texts: Sequence[str]) -> float:
    table = h.unique("model")
    await h.create_table(svc.dsn, table)
    target = await h.apply(h.make_pipeline(svc.dsn, table, "memory", provider="local"))
    provider = LocalProvider(max_batch_size=MODEL_BATCH)
    conn = await asyncpg.connect(svc.dsn)
    try:
        async with h.running(target, "memory", svc, workers=1, provider=provider) as stack:
            await h.warm_up(stack, conn, table, 0)  # loads the model
            async with conn.transaction():
                await h.insert_rows(conn, table, range(1, len(texts) + 1),
                                    lambda i: texts[i - 1])
                committed = time.perf_counter()
            done = await stack.wait_written(len(texts) + 1)
    finally:
        await conn.close()
    return len(texts) / (done - committed)


async def run(args: Any) -> dict[str, Any]:
    rows = args.rows or (24 if args.quick else 500)
    texts = make_texts(rows)
    model = await asyncio.to_thread(LocalModel)
    await asyncio.to_thread(model.embed, texts[:8])  # warm up
    async with h.services() as svc:
        raw = [await asyncio.to_thread(raw_rate, model, texts)]
        rate = await pipeline_rate(svc, texts)
        raw.append(await asyncio.to_thread(raw_rate, model, texts))
        versions = await h.server_versions(svc.dsn)
    raw_mean = sum(raw) / len(raw)
    return {"benchmark": "model", "quick": args.quick, "rows": rows, "queue": "memory",
            "provider": "local", "threads": physical_cores(), "model_batch": MODEL_BATCH,
            "machine": h.machine() | versions,
            "results": [{"rows": rows, "rows_per_s": round(rate, 1),
                         "raw_texts_per_s": round(raw_mean, 1),
                         "raw_runs": [round(r, 1) for r in raw],
                         "ratio": round(rate / raw_mean, 3)}]}


def render(report: Mapping[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"model-bound: {report['rows']:,} rows, local model, "
                        f"{report['threads']} threads, memory queue")
    for column in ("rows", "pipeline rows/s", "raw model texts/s", "ratio"):
        table.add_column(column, justify="right")
    for r in report["results"]:
        table.add_row(f"{r['rows']:,}", f"{r['rows_per_s']:,.1f}",
                      f"{r['raw_texts_per_s']:,.1f}", f"{r['ratio']:.3f}")
    Console(width=160).print(table)


def main() -> None:
    parser = h.base_parser(__doc__)
    parser.add_argument("--rows", type=int, default=None, help="rows (default 500)")
    args = parser.parse_args()
    h.quiet_logs()
    h.emit(asyncio.run(run(args)), args.json, render)


if __name__ == "__main__":
    main()
