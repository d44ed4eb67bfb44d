"""`v10r status`: per pipeline, is it applied, how many rows are current, stale, missing,
and (with --watch) how fast that changes and whether any worker is consuming."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections import defaultdict
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import click
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from v10r import db
from v10r.cli.common import console, run, spec_paths, specs_argument, stop_on_signals
from v10r.ops.status import Counts, pipeline_counts
from v10r.ops.watch import Observation, Trend, consuming, duration, state_of
from v10r.queues.base import Depth, Queue
from v10r.reconcile.state import AppliedPipeline, applied_state
from v10r.redact import mask_text, safe
from v10r.spec.identifiers import quote_ident
from v10r.spec.load import load_pipelines
from v10r.spec.model import Pipeline

log = logging.getLogger(__name__)

NUMBERS = ("rows", "current", "stale", "missing")


@click.command()
@specs_argument
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--watch", is_flag=True,
              help="Refresh until Ctrl-C, with rate, ETA and queue depth per pipeline.")
@click.option("--interval", type=click.FloatRange(0.2, 3600), default=2.0, show_default=True,
              metavar="SECONDS", help="Seconds between refreshes with --watch.")
@click.option("--metrics-url", "metrics_urls", multiple=True, metavar="URL",
              help="A worker's or listener's metrics endpoint (repeatable), to show what it "
              "has paused, e.g. http://worker:9100/metrics.")
def status(paths: tuple[str, ...], fmt: str, watch: bool, interval: float,
           metrics_urls: tuple[str, ...]) -> None:
    """Show, per pipeline, whether it is applied and how many rows are embedded.

    \b
    A row is current when its stored hash matches its current text, model and
    preprocessing; stale when any of those changed; missing when never embedded.
    "embedding" is shown only when a worker is seen consuming (consumers on the
    broker, or progress between samples); otherwise pending rows are "stale (no
    worker?)". During a blue/green re-embedding the counts are those of the new column
    being filled (queries still read the old one); `v10r apply` swaps them once done.
    Exit codes: 0 every pipeline applied and nothing pending, 1 error,
    3 something pending or not applied (useful in scripts and health checks).
    """
    pipelines = load_pipelines(spec_paths(paths))
    if watch:
        report = run(_watch(pipelines, interval, metrics_urls, fmt))
    else:
        report = run(_sample(pipelines, metrics_urls))
        if fmt == "json":
            click.echo(json.dumps(report, indent=2))
        else:
            console(wrap=True).print(render(report, {}))
    in_sync = all(r["applied"] and r["up_to_date"] and r["counts"] and r["counts"]["pending"] == 0
                  and not r["reembedding"]
                  for r in report)
    sys.exit(0 if in_sync else 3)


async def _sample(pipelines: list[Pipeline], metrics_urls: tuple[str, ...]
                  ) -> list[dict[str, Any]]:
    async with AsyncExitStack() as stack:
        queues = await _open_queues(stack, pipelines)
        return await _report(pipelines, queues, metrics_urls)


async def _watch(pipelines: list[Pipeline], interval: float, metrics_urls: tuple[str, ...],
                 fmt: str) -> list[dict[str, Any]]:
    """Sample every `interval` seconds until SIGINT/SIGTERM; returns the last report."""
    stop = asyncio.Event()
    stop_on_signals(stop, "stopped watching")
    trends: dict[str, Trend] = defaultdict(Trend)
    report: list[dict[str, Any]] = []
    async with AsyncExitStack() as stack:
        queues = await _open_queues(stack, pipelines)
        out = console(wrap=True)
        if fmt != "json" and not out.is_terminal:  # the last frame ends its line
            stack.callback(out.line)
        live = None if fmt == "json" else stack.enter_context(
            Live(console=out, auto_refresh=False))
        while not stop.is_set():
            report = await _report(pipelines, queues, metrics_urls)
            now = time.monotonic()
            for r in report:
                depth = r["queue_depth"] or {}
                trends[r["pipeline"]].add(Observation(
                    now, (r["counts"] or {}).get("current", 0), depth.get("waiting")))
            if live is None:  # one JSON document per line and sample
                click.echo(json.dumps(_with_trends(report, trends)))
            else:
                live.update(render(report, trends), refresh=True)
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                pass
    return report


def _with_trends(report: list[dict[str, Any]], trends: dict[str, Trend]) -> list[dict]:
    out = []
    for r in report:
        trend = trends.get(r["pipeline"])
        pending = (r["counts"] or {}).get("pending", 0)
        out.append({**r, "rate_per_s": trend.rate if trend else None,
                    "eta_s": trend.eta_s(pending) if trend else None})
    return out


async def _report(pipelines: list[Pipeline], queues: dict[str, Queue],
                  metrics_urls: tuple[str, ...]) -> list[dict[str, Any]]:
    report = await _collect(pipelines)
    paused = await _paused(metrics_urls) if metrics_urls else None
    for r in report:
        depth = await _depth(queues.get(r["pipeline"]), r["pipeline"])
        r["queue_depth"] = {"waiting": depth.waiting, "in_flight": depth.in_flight,
                            "consumers": depth.consumers} if depth else None
        r["paused"] = paused
    return report


async def _open_queues(stack: AsyncExitStack, pipelines: list[Pipeline]) -> dict[str, Queue]:
    """A queue per pipeline whose broker other processes share (not memory), opened
    without creating anything; one that cannot be reached shows no depth."""
    from v10r.cli.queues import by_queue
    from v10r.queues.factory import create_queue

    queues: dict[str, Queue] = {}
    for group in by_queue([p for p in pipelines if p.queue.kind != "memory"], None):
        try:
            queue = create_queue(group[0].queue, pipelines=[])
            await asyncio.wait_for(queue.start(), 10)
        except Exception as exc:  # noqa: BLE001 - depth is best effort; counts still show
            log.info("queue %s: no depth shown (%s)", group[0].queue.kind, mask_text(str(exc)))
            continue
        stack.push_async_callback(queue.close)
        queues.update({p.name: queue for p in group})
    return queues


async def _depth(queue: Queue | None, pipeline: str) -> Depth | None:
    if queue is None:
        return None
    try:
        return await asyncio.wait_for(queue.depth(pipeline), 10)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - an unreachable broker shows no depth
        return None


async def _paused(urls: tuple[str, ...]) -> list[str]:
    """What the workers' breakers hold paused, read from their metrics endpoints."""
    import aiohttp

    found: list[str] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as client:
        for url in urls:
            try:
                async with client.get(url) as response:
                    text = await response.text(errors="replace")
            except (aiohttp.ClientError, TimeoutError) as exc:
                found.append(mask_text(f"{url}: unreachable ({type(exc).__name__})"))
                continue
            found += [_paused_line(line) for line in text.splitlines()
                      if line.startswith("v10r_paused{") and not line.endswith(" 0.0")]
    return found


def _paused_line(line: str) -> str:
    labels = dict(part.split("=", 1) for part in line[line.index("{") + 1:line.rindex("}")]
                  .split('",') if "=" in part)
    values = {k: v.strip('"') for k, v in labels.items()}
    return mask_text(f"{values.get('service', '?')} {values.get('name', '?')} paused "
                     f"({values.get('reason', '?')})")


async def _collect(pipelines: list[Pipeline]) -> list[dict[str, Any]]:
    by_database: dict[Any, list[Pipeline]] = defaultdict(list)
    for p in pipelines:
        by_database[p.database].append(p)
    report = []
    for database, group in by_database.items():
        conn = await db.connect(database, "read", pipeline=group[0].name)
        try:
            states = await applied_state(conn, group)
            for p in group:
                report.append(await _one(conn, p, states[p.name]))
        finally:
            await conn.close()
    return report


async def _one(conn: Any, p: Pipeline, state: AppliedPipeline) -> dict[str, Any]:
    counts: Counts | None = None
    if state.applied:
        try:
            counts = await pipeline_counts(conn, p, state.names)
        except asyncpg.UndefinedColumnError:
            counts = None  # a drifted pipeline: its problems say which column is missing
    serving = state.serving or state.names
    migration = None
    if state.serving is not None and counts is not None:
        migration = {"column": state.names.embedding, "done": counts.current,
                     "total": counts.rows, "complete": counts.pending == 0,
                     "eta_s": await _eta(conn, state, counts)}
    return {
        "pipeline": p.name,
        "table": serving.display_table,
        "column": serving.embedding,
        "model": p.model,
        "queue": p.queue.kind,
        "applied": state.applied,
        "up_to_date": state.up_to_date,
        "problems": list(state.problems),
        "warnings": list(state.warnings),
        "counts": counts.as_json() if counts else None,
        "reembedding": migration,
    }


async def _eta(conn: Any, state: AppliedPipeline, counts: Counts) -> float | None:
    """Seconds left at the rate the new column has been filled so far (None: no rate yet)."""
    at = quote_ident(state.names.at)
    span = await conn.fetchval(f"SELECT extract(epoch FROM pg_catalog.max({at}) "
                               f"OPERATOR(pg_catalog.-) pg_catalog.min({at})) "
                               f"FROM {state.names.qualified_table}")
    if not span or counts.current == 0 or counts.pending == 0:
        return None
    return round(float(span) / counts.current * counts.pending, 1)


# ---- rendering ----------------------------------------------------------------------

def render(report: list[dict[str, Any]], trends: dict[str, Trend]) -> Group:
    """A table narrow enough for 80 columns (numbers are never cut: names fold
    instead), then a few lines per pipeline with the details."""
    table = Table(title="v10r status", title_justify="left", box=None, pad_edge=False,
                  header_style="bold")
    table.add_column("pipeline", overflow="fold", ratio=1)
    table.add_column("state", overflow="fold")
    cells = [[_number(r, k) for k in NUMBERS] for r in report]
    for i, name in enumerate(NUMBERS):
        widest = max([len(name)] + [len(row[i]) for row in cells])
        table.add_column(name, justify="right", no_wrap=True, min_width=widest)
    lines: list[Any] = [table]
    for r, numbers in zip(report, cells, strict=True):
        trend = trends.get(r["pipeline"])
        depth = r.get("queue_depth") or {}
        label, style = state_of(r, consuming(trend, depth.get("consumers")))
        table.add_row(safe(r["pipeline"]), f"[{style}]{label}[/]", *numbers)
        lines += _details(r, trend)
    return Group(*lines)


def _number(r: dict[str, Any], key: str) -> str:
    value = (r["counts"] or {}).get(key)
    return "—" if value is None else f"{value:,}"


def _details(r: dict[str, Any], trend: Trend | None) -> list[Text]:
    name, c = safe(r["pipeline"]), r["counts"] or {}
    last = (c.get("last_embedded_at") or "never")[:19].replace("T", " ")
    out = [f"[bold]{name}[/] → {safe(r['table'])}.{safe(r['column'])} ({safe(r['model'])})",
           f"  last embedded {last}; {c.get('empty', 0):,} empty (no text)"]
    if trend is not None and trend.rate is not None:
        eta = duration(trend.eta_s(c.get("pending", 0)))
        out.append(f"  {trend.rate:,.1f} rows/s, ETA {eta}")
    out.append("  " + _queue_text(r))
    if m := r["reembedding"]:
        eta = f", ~{duration(m['eta_s'])} left" if m["eta_s"] is not None else ""
        out.append(f"  [yellow]re-embedding into {safe(m['column'])}: {m['done']:,}/"
                   f"{m['total']:,} rows done{eta}[/]; queries read {safe(r['column'])} "
                   "until `v10r apply` cuts over")
    out += [f"  [red]paused:[/] {safe(p)}" for p in r.get("paused") or []]
    out += [f"  [red]problem:[/] {safe(p)}" for p in r["problems"]]
    out += [f"  [yellow]warning:[/] {safe(w)}" for w in r["warnings"]]
    return [Text.from_markup(line) for line in out]


def _queue_text(r: dict[str, Any]) -> str:
    kind, depth = safe(r["queue"]), r.get("queue_depth")
    if depth is None:
        return f"queue {kind}: depth not known" if kind != "memory" else \
            "queue memory: inside the listener's process"
    parts = [f"{depth['waiting']:,} waiting" if depth["waiting"] is not None else None,
             f"{depth['in_flight']:,} in flight" if depth["in_flight"] is not None else None,
             f"{depth['consumers']} worker(s) seen" if depth["consumers"] is not None else None]
    return f"queue {kind}: " + ", ".join(p for p in parts if p)
