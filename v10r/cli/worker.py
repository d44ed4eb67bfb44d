"""`v10r worker` (embed and write vectors from a queue) and `v10r dlq list|replay`."""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import click
from rich.table import Table

from v10r.cli.common import console, specs_argument, stop_on_signals
from v10r.cli.queues import (
    by_queue,
    kind_of,
    load_specs,
    metrics_option,
    open_queue,
    queue_option,
    select,
)
from v10r.queues.base import DeadLetter, Queue
from v10r.redact import safe
from v10r.spec.model import Pipeline

log = logging.getLogger(__name__)

queue_choice = queue_option("Queue to use instead of each pipeline's `queue.kind`.")


@click.command()
@specs_argument
@queue_choice
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Concurrent consumer loops per pipeline.")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=256, show_default=True,
              help="Tasks taken from the queue and written per batch.")
@click.option("--in-flight", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Batches each loop processes at once, so one slow provider request "
              "holds back only its own rows.")
@click.option("--reclaim-after", type=click.FloatRange(0.05, 86_400), default=None,
              help="Redis: a worker silent this many seconds is presumed dead and its pending "
              "tasks are taken over (default 3; a live worker's tasks are never taken).")
@metrics_option
def worker(paths: tuple[str, ...], queue_kind: str | None, workers: int, batch_size: int,
           in_flight: int, reclaim_after: float | None, metrics_port: int | None) -> None:
    """Embed changed rows from the queue and write their vectors, until SIGINT/SIGTERM.

    \b
    A task is acknowledged only after its vector is written; on SIGINT/SIGTERM the
    batch in hand is finished first. While the provider or the database is down,
    consumption pauses ("paused: ... unreachable since ...") and resumes when it
    answers; nothing is dead-lettered meanwhile. Kafka pipelines usually run under
    `faust -A v10r worker` instead. Exit codes: 0 stopped cleanly; 1 a database,
    queue or provider could not be reached, or a spec is invalid; 2 usage error.
    """
    pipelines = load_specs(paths)
    if any(kind_of(p, queue_kind) == "memory" for p in pipelines):
        click.echo("warning: a memory queue only carries tasks within one process; use "
                   "`v10r listen --workers-in-process N` or a redis/rabbitmq/kafka queue",
                   err=True)
    stats = asyncio.run(_serve(pipelines, queue_kind, (workers, batch_size, in_flight),
                               reclaim_after, metrics_port))
    for name, counters in stats.items():
        snap = counters.snapshot()
        click.echo(f"{name}: {snap['processed']} processed ({snap['written']} written, "
                   f"{snap['skipped']} skipped), {snap['retried']} retried, "
                   f"{snap['dead_lettered']} dead-lettered", err=True)


async def _serve(pipelines: list[Pipeline], queue_kind: str | None,
                 shape: tuple[int, int, int], reclaim_after: float | None,
                 metrics_port: int | None) -> dict:
    """Run the loops; `shape` is (loops per pipeline, batch size, batches in flight)."""
    from v10r.ops.health import QueueWatch, ready_check
    from v10r.ops.metrics import serving
    from v10r.work.breaker import Breakers
    from v10r.work.runner import run_workers
    from v10r.work.settle import counter_samples

    stop = asyncio.Event()
    stop_on_signals(stop, "stopping: finishing the batches in hand...")
    stats: dict = {}
    breakers, watch = Breakers(), QueueWatch()
    workers, batch_size, in_flight = shape
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(serving(
            metrics_port, lambda: counter_samples(stats) + breakers.samples() + watch.samples(),
            ready=ready_check({p.database.name: p.database for p in pipelines}, watch,
                              breakers.snapshot)))
        runs = []
        for group in by_queue(pipelines, queue_kind):
            queue = await open_queue(stack, group, queue_kind)
            watch.add(queue, [p.name for p in group])
            if reclaim_after is not None:
                _set_reclaim(queue, reclaim_after)
            runs.append(run_workers(group, queue, workers, stop, batch_size=batch_size,
                                    stats=stats, breakers=breakers, in_flight=in_flight))
        click.echo(f"v10r worker: {len(pipelines)} pipeline(s), {workers} loop(s) each; "
                   "Ctrl-C to stop", err=True)
        if metrics_port is not None:
            runs.append(watch.run(stop))
        await _gather_or_stop(runs, stop)
    return stats


async def _gather_or_stop(runs: list, stop: asyncio.Event) -> None:
    """Run every group; if one fails to start, stop the others and re-raise."""
    tasks = [asyncio.ensure_future(run) for run in runs]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise




def _set_reclaim(queue: Queue, seconds: float) -> None:
    from v10r.queues.redis import RedisQueue

    match queue:
        case RedisQueue():
            queue.dead_after = seconds
        case _:
            log.info("--reclaim-after applies to redis queues only")


@click.group()
def dlq() -> None:
    """Inspect and replay tasks that kept failing (the dead-letter queue)."""


@dlq.command("list")
@specs_argument
@click.option("--pipeline", "only", default=None, help="Only this pipeline.")
@queue_choice
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
def dlq_list(paths: tuple[str, ...], only: str | None, queue_kind: str | None, limit: int,
             fmt: str) -> None:
    """List dead-lettered tasks: id, pipeline, row, attempts, when and why they failed."""
    pipelines = _listable(select(load_specs(paths), only), queue_kind)
    letters = asyncio.run(_dead_letters(pipelines, queue_kind, limit))
    if fmt == "json":
        click.echo(json.dumps([_as_json(name, d) for name, d in letters], indent=2))
        return
    if not letters:
        click.echo("no dead-lettered tasks")
        return
    table = Table("id", "pipeline", "row", "attempts", "failed at", "error")
    for column in table.columns[:5]:
        column.no_wrap = True
    for name, d in letters:
        table.add_row(safe(d.id), safe(name), safe(_row(d)), str(d.attempts),
                      _when(d.failed_at), safe(d.error))
    console().print(table)


@dlq.command("replay")
@specs_argument
@click.option("--pipeline", "only", default=None, help="Only this pipeline.")
@queue_choice
@click.option("--id", "ids", multiple=True, help="Replay only this dead letter (repeatable).")
def dlq_replay(paths: tuple[str, ...], only: str | None, queue_kind: str | None,
               ids: tuple[str, ...]) -> None:
    """Put dead-lettered tasks back on the queue as fresh tasks (all, or those with --id).

    \b
    A dead letter that is not a readable task (another release's message, bad JSON) is
    never replayed: it stays listed until the dead-letter queue is purged.
    """
    pipelines = _listable(select(load_specs(paths), only), queue_kind)
    counts = asyncio.run(_replay(pipelines, queue_kind, list(ids) or None))
    for name, count in counts.items():
        click.echo(f"{name}: {count} task(s) replayed")


async def _dead_letters(pipelines: list[Pipeline], queue_kind: str | None,
                        limit: int) -> list[tuple[str, DeadLetter]]:
    found: list[tuple[str, DeadLetter]] = []
    async with AsyncExitStack() as stack:
        for group in by_queue(pipelines, queue_kind):
            queue = await open_queue(stack, group, queue_kind)
            for pipeline in group:
                found += [(pipeline.name, d) for d in await queue.dead_letters(pipeline.name,
                                                                                limit)]
    return found


async def _replay(pipelines: list[Pipeline], queue_kind: str | None,
                  ids: list[str] | None) -> dict[str, int]:
    counts: dict[str, int] = {}
    async with AsyncExitStack() as stack:
        for group in by_queue(pipelines, queue_kind):
            queue = await open_queue(stack, group, queue_kind)
            for pipeline in group:
                counts[pipeline.name] = await queue.replay(pipeline.name, ids)
    return counts


MEMORY_DEAD_LETTERS = (
    "pipeline(s) {names} use the memory queue: its dead letters live inside the "
    "`v10r listen --workers-in-process` process and cannot be listed or replayed from "
    "another command. Each one is logged there (\"dead-lettered ... [rows ...]: reason\"); "
    "the rows stay stale, so the listener's catch-up scan (every --catchup-interval, and "
    "at start) enqueues them again. Use a redis, rabbitmq or kafka queue to keep dead "
    "letters listable and replayable.")


def _listable(pipelines: list[Pipeline], queue_kind: str | None) -> list[Pipeline]:
    """Pipelines whose dead letters another process can reach; says why for the rest."""
    memory = [p.name for p in pipelines if kind_of(p, queue_kind) == "memory"]
    if memory:
        click.echo("note: " + MEMORY_DEAD_LETTERS.format(names=", ".join(memory)), err=True)
    rest = [p for p in pipelines if kind_of(p, queue_kind) != "memory"]
    if memory and not rest:
        raise SystemExit(1)
    return rest


def _row(letter: DeadLetter) -> str:
    if letter.task is None:
        return "(unreadable: " + letter.raw[:40].decode(errors="replace") + ")"
    return json.dumps(letter.task.id)


def _as_json(pipeline: str, letter: DeadLetter) -> dict:
    task = json.loads(letter.task.to_json()) if letter.task is not None else None
    return {"id": letter.id, "pipeline": pipeline,
            "row": letter.task.id if letter.task is not None else None,
            "attempts": letter.attempts, "failed_at": _when(letter.failed_at),
            "error": letter.error, "task": task,
            "raw": None if task is not None else letter.raw.decode(errors="replace")}


def _when(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds")
