"""`v10r listen` (changes → tasks, optionally with in-process workers) and `v10r backfill`."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import click

from v10r.cli.common import specs_argument, stop_on_signals
from v10r.cli.queues import (
    by_queue,
    kind_of,
    load_specs,
    metrics_option,
    open_queue,
    queue_option,
    select,
)
from v10r.listen.targets import Target
from v10r.queues.base import Queue
from v10r.redact import printable
from v10r.spec.model import Pipeline

if TYPE_CHECKING:
    from v10r.listen.backfill import Outcome

queue_choice = queue_option("Queue to publish to instead of each pipeline's `queue.kind`.")


@click.command()
@specs_argument
@queue_choice
@click.option("--workers-in-process", type=click.IntRange(0, 256), default=0, show_default=True,
              help="Also run N workers per pipeline in this process (dev mode; the queue "
              "defaults to memory).")
@click.option("--no-catchup", is_flag=True,
              help="Skip the catch-up scans (on start, after reconnects, periodic; `scan` "
              "notifications from bulk statements are still served).")
@click.option("--catchup-interval", type=click.FloatRange(min=1), default=300.0,
              show_default=True, metavar="SECONDS",
              help="Also scan for missing or stale rows this often, so a task lost "
              "anywhere downstream is enqueued again.")
@metrics_option
def listen(paths: tuple[str, ...], queue_kind: str | None, workers_in_process: int,
           no_catchup: bool, catchup_interval: float, metrics_port: int | None) -> None:
    """Turn row changes into tasks on the queue, until SIGINT/SIGTERM.

    \b
    On start, after every reconnect and every --catchup-interval, a catch-up scan
    enqueues rows whose vector is missing or stale, so changes made while the listener
    was down, or tasks lost downstream, are not lost.
    Run two or more for the same specs and database for high availability: one is
    active, the others wait as standbys and take over within seconds when it stops
    (a PostgreSQL advisory lock held by the active listener's session).
    Exit codes: 0 stopped cleanly; 1 a pipeline is not applied, or the database or
    queue cannot be reached; 2 usage error.
    """
    pipelines = load_specs(paths)
    if workers_in_process and queue_kind is None:
        queue_kind = "memory"
    elif not workers_in_process and any(kind_of(p, queue_kind) == "memory" for p in pipelines):
        click.echo("warning: nothing consumes a memory queue outside this process; add "
                   "`--workers-in-process N` or use a redis/rabbitmq/kafka queue", err=True)
    published, caught_up = asyncio.run(
        _listen(pipelines, queue_kind, workers_in_process, not no_catchup,
                None if no_catchup else catchup_interval, metrics_port))
    click.echo(f"v10r listen: stopped; {published} task(s) published from notifications, "
               f"{caught_up} from catch-up scans", err=True)


@click.command()
@specs_argument
@queue_choice
@click.option("--pipeline", "only", default=None, help="Only this pipeline.")
@click.option("--wait", is_flag=True,
              help="Then show progress (rows current / rows, rate, ETA) until no row is stale.")
@click.option("--restart", is_flag=True,
              help="Start from the first key, even if an earlier run's rows are still queued.")
@click.option("--stall-timeout", type=click.FloatRange(1, None), default=300.0,
              show_default=True, help="With --wait: give up after this many seconds without "
              "a row embedded.")
def backfill(paths: tuple[str, ...], queue_kind: str | None, only: str | None, wait: bool,
             restart: bool, stall_timeout: float) -> None:
    """Enqueue every row whose vector is missing or stale, once, then exit.

    \b
    Walks each table in key order (constant memory) and publishes pages of rows as
    batched messages, which all workers share. Resumable: a run that stopped continues
    after the last key it published; a run while an earlier run's rows are still being
    embedded enqueues nothing (see --restart); a second run at the same time is refused.
    Exit codes: 0 done; 1 a pipeline is not applied, the database or queue cannot be
    reached, another backfill runs, or --wait saw no progress; 2 usage error.
    """
    pipelines = select(load_specs(paths), only)
    memory = [p.name for p in pipelines if kind_of(p, queue_kind) == "memory"]
    if memory:
        raise click.UsageError(
            f"pipeline(s) {', '.join(memory)} use a memory queue, which no other process can "
            "read; pass --queue redis|rabbitmq|kafka, or run `v10r listen "
            "--workers-in-process N`, whose start-up scan does the same")
    asyncio.run(_backfill(pipelines, queue_kind, restart,
                          stall_timeout if wait else None))


# ---- running ------------------------------------------------------------------------

async def _listen(pipelines: list[Pipeline], queue_kind: str | None, workers: int,
                  catchup: bool, catchup_interval: float | None,
                  metrics_port: int | None) -> tuple[int, int]:
    from v10r.listen.applied import resolve_all
    from v10r.listen.listener import Listener, ListenerSettings, listener_samples
    from v10r.ops.health import QueueWatch, ready_check
    from v10r.ops.metrics import serving
    from v10r.work.breaker import Breakers
    from v10r.work.settle import counter_samples

    listen_stop, work_stop = asyncio.Event(), asyncio.Event()
    stop_on_signals(listen_stop, "stopping: publishing what is buffered...")
    targets = await resolve_all(pipelines)
    settings = ListenerSettings(catchup=catchup, catchup_interval_s=catchup_interval)
    listeners: list[Listener] = []
    stats: dict = {}
    breakers, watch = Breakers(), QueueWatch()
    metrics = serving(metrics_port, lambda: listener_samples(listeners) + counter_samples(stats)
                      + breakers.samples() + watch.samples(),
                      ready=ready_check({p.database.name: p.database for p in pipelines},
                                        watch, breakers.snapshot))
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(metrics)
        worker_runs = []
        for group in _targets_by_queue(targets, queue_kind):
            queue = await open_queue(stack, [t.pipeline for t in group], queue_kind)
            watch.add(queue, [t.name for t in group])
            listeners += [Listener(db_group, queue, settings) for db_group in _by_database(group)]
            if workers:
                worker_runs.append(_workers(group, queue, workers, work_stop, stats, breakers))
        workers_task = asyncio.gather(*worker_runs)
        if worker_runs:  # workers that fail to start stop the listener too
            workers_task.add_done_callback(lambda _t: listen_stop.set())
        announce = asyncio.create_task(_announce(listeners, targets, workers))
        if metrics_port is not None:
            stack.callback(asyncio.create_task(watch.run(work_stop)).cancel)
        try:
            await asyncio.gather(*(listener.run(listen_stop) for listener in listeners))
        finally:
            announce.cancel()
            listen_stop.set()
            work_stop.set()
            await workers_task
    return (sum(listener.stats.published for listener in listeners),
            sum(listener.stats.caught_up_rows for listener in listeners))


async def _workers(targets: list[Target], queue: Queue, concurrency: int,
                   stop: asyncio.Event, stats: dict, breakers: object) -> None:
    from v10r.work.runner import run_workers

    await run_workers([t.pipeline for t in targets], queue, concurrency, stop,
                      names={t.name: t.names for t in targets}, stats=stats,
                      breakers=breakers)  # type: ignore[arg-type]


async def _announce(listeners: Sequence, targets: list[Target], workers: int) -> None:
    """One line once every listener is LISTENing (scripts and tests wait for it)."""
    for listener in listeners:
        await listener.listening.wait()
    tables = sorted({t.table for t in targets})
    extra = f", {workers} in-process worker(s) per pipeline" if workers else ""
    click.echo(printable(f"v10r listen: listening for {len(targets)} pipeline(s) on "
                         f"{', '.join(tables)}{extra}; Ctrl-C to stop"), err=True)


async def _backfill(pipelines: list[Pipeline], queue_kind: str | None, restart: bool,
                    stall_s: float | None) -> None:
    """Publish each pipeline's stale rows, printing a line each; then watch if asked."""
    from v10r import db
    from v10r.listen.applied import resolve_all
    from v10r.listen.backfill import backfill_target, watch
    from v10r.listen.catchup import progress_bar

    targets = await resolve_all(pipelines)
    show = sys.stderr.isatty()
    async with AsyncExitStack() as stack:
        for group in _targets_by_queue(targets, queue_kind):
            queue = await open_queue(stack, [t.pipeline for t in group], queue_kind)
            for target in group:
                conn = await db.connect(target.pipeline.database, "write",
                                        pipeline=target.name, vector_codec=False)
                try:
                    with progress_bar(show) as progress:
                        outcome = await backfill_target(conn, target, queue, restart=restart,
                                                        progress=progress)
                finally:
                    await conn.close()
                click.echo(printable(_backfilled(target.name, outcome)))
    if stall_s is not None:
        for group in _by_database(targets):
            conn = await db.connect(group[0].pipeline.database, "read",
                                    pipeline=group[0].name, vector_codec=False)
            try:
                await watch(conn, group, show=show, stall_s=stall_s)
            finally:
                await conn.close()
        click.echo(f"backfill done: no row of {len(targets)} pipeline(s) is stale")


def _backfilled(name: str, outcome: Outcome) -> str:
    if outcome.still_pending:
        return (f"{name}: 0 row(s) enqueued; {outcome.still_pending:,} row(s) of the last "
                "backfill are not embedded yet (--wait to watch; --restart to enqueue every "
                "stale row again, e.g. after loading rows with triggers disabled)")
    resumed = outcome.resumed_after
    after = f" (resumed after {resumed:,} published before)" if resumed else ""
    return f"{name}: {outcome.enqueued} row(s) enqueued{after}"


# ---- helpers ------------------------------------------------------------------------

def _targets_by_queue(targets: list[Target], override: str | None) -> list[list[Target]]:
    by_name = {t.name: t for t in targets}
    return [[by_name[p.name] for p in group]
            for group in by_queue([t.pipeline for t in targets], override)]


def _by_database(targets: list[Target]) -> list[list[Target]]:
    groups: dict[object, list[Target]] = {}
    for target in targets:
        groups.setdefault(target.pipeline.database, []).append(target)
    return list(groups.values())
