"""Throughput and latency of the local provider, beside the raw ONNX session it wraps.

For each batch size the same texts are embedded twice in one run: through
`LocalProvider.embed` (tokenize, thread hop, inference, pooling, reassembly) and as bare
`session.run` calls on the same pre-tokenized batches. ratio = provider / raw texts/s,
the share of the model's speed the provider keeps (target ≥ 0.95).

    .venv/bin/python bench/providers.py [--quick] [--json] [--infinity]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from v10r.providers.local import LocalModel, LocalProvider, physical_cores

WORDS = ["vector", "database", "row", "text", "change", "trigger", "notify", "worker", "queue",
         "batch", "model", "embedding", "index", "search", "query", "table", "column", "update",
         "postgres", "replica", "customer", "order", "invoice", "refund", "ticket", "answer"]


@dataclass
class Result:
    target: str
    batch_size: int
    texts: int
    texts_per_s: float
    p50_ms: float
    p95_ms: float
    raw_texts_per_s: float | None = None
    ratio: float | None = None


def make_texts(count: int, seed: int = 42) -> list[str]:
    """Sentences of 5–120 words: short titles to paragraph-sized descriptions."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 120))) for _ in range(count)]


def chunks(texts: Sequence[str], size: int) -> list[list[str]]:
    return [list(texts[i : i + size]) for i in range(0, len(texts), size)]


async def timed(calls: list[Callable[[], Awaitable[object]]]) -> tuple[float, list[float]]:
    """(total seconds, per-call latencies) of running the calls one after another."""
    latencies = []
    started = time.perf_counter()
    for call in calls:
        begin = time.perf_counter()
        await call()
        latencies.append(time.perf_counter() - begin)
    return time.perf_counter() - started, latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def bench_local(texts: list[str], batch_size: int, model: LocalModel) -> Result:
    """Raw and provider calls alternate batch by batch, so both see the same machine load."""
    provider = LocalProvider(max_batch_size=batch_size)
    provider._model = model  # share the loaded session: same threads, same weights
    batches = chunks(texts, batch_size)
    encoded = [model.encode(sorted(b, key=len)) for b in batches]  # the provider's grouping
    await provider.embed(batches[0])  # warm up
    model.run(encoded[0])
    raw_s, provider_s, latencies = 0.0, 0.0, []
    for batch, feeds in zip(batches, encoded, strict=True):
        seconds, _ = await timed([lambda f=feeds: asyncio.to_thread(model.run, f)])
        raw_s += seconds
        seconds, (latency,) = await timed([lambda b=batch: provider.embed(b)])
        provider_s += seconds
        latencies.append(latency)
    raw_rate, rate = len(texts) / raw_s, len(texts) / provider_s
    return Result("local", batch_size, len(texts), rate, percentile(latencies, 0.5) * 1e3,
                  percentile(latencies, 0.95) * 1e3, raw_rate, rate / raw_rate)


async def bench_infinity(texts: list[str], sizes: Sequence[int]) -> list[Result]:
    from tests.services.infinity import SERVED_MODEL, InfinityServer, ensure_installed
    from v10r.providers.openai import OpenAICompatibleProvider

    ensure_installed()
    server = InfinityServer().start()
    results = []
    try:
        for size in sizes:
            provider = OpenAICompatibleProvider(name="infinity", model=SERVED_MODEL,
                                                dimensions=384, base_url=server.url,
                                                max_batch_size=size, timeout_s=120)
            batches = chunks(texts, size)
            await provider.embed(batches[0])
            total_s, latencies = await timed([lambda b=b, p=provider: p.embed(b) for b in batches])
            await provider.aclose()
            results.append(Result("infinity", size, len(texts), len(texts) / total_s,
                                  percentile(latencies, 0.5) * 1e3,
                                  percentile(latencies, 0.95) * 1e3))
    finally:
        server.stop()
    return results


async def run(args: argparse.Namespace) -> dict:
    texts = make_texts(32 if args.quick else 512)
    sizes = (1, 8) if args.quick else (1, 8, 32, 64)
    model = await asyncio.to_thread(LocalModel)
    results = [await bench_local(texts, size, model) for size in sizes]
    if args.infinity:
        results += await bench_infinity(texts, sizes)
    return {"texts": len(texts), "threads": physical_cores(), "quick": args.quick,
            "results": [asdict(r) for r in results]}


def render(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"providers: {report['texts']} texts, {report['threads']} threads")
    for column in ("target", "batch", "texts/s", "p50 ms", "p95 ms", "raw texts/s", "ratio"):
        table.add_column(column, justify="right")
    for r in report["results"]:
        raw = f"{r['raw_texts_per_s']:.1f}" if r["raw_texts_per_s"] else "—"
        ratio = f"{r['ratio']:.3f}" if r["ratio"] else "—"
        table.add_row(r["target"], str(r["batch_size"]), f"{r['texts_per_s']:.1f}",
                      f"{r['p50_ms']:.1f}", f"{r['p95_ms']:.1f}", raw, ratio)
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny workload (smoke test)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--infinity", action="store_true", help="also measure a local Infinity server")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        render(report)


if __name__ == "__main__":
    main()
