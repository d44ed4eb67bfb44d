"""`v10r backfill`: enqueue a pipeline's stale rows once, resumably.

The scan (`catchup.scan_target`) walks the key in order and publishes pages as batched
messages, which every worker of the queue shares (Kafka partitions, Redis and RabbitMQ
consumers, in-process loops). A bookmark per pipeline in `v10r.backfill` (created by
`v10r apply`) records the last key published:
- a run that crashed resumes after that key;
- a run whose pages were all published, while rows are still stale, enqueues nothing
  (workers are still on them; `--restart` enqueues them again, e.g. after dead letters);
- once no row is stale, or the pipeline's fingerprint changed, a run starts afresh.
A session advisory lock per pipeline refuses a second run while one publishes.
The bookmark is only a place to start from: the catch-up scan of `v10r listen` still
finds any row it skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg

from v10r.compile.content_hash import fingerprint
from v10r.compile.ddl import ADVISORY_LOCK_KEY
from v10r.compile.names import V10R_SCHEMA
from v10r.errors import V10rError
from v10r.keys import read_column_types
from v10r.listen.catchup import DEFAULT_PAGE_SIZE, Progress, scan_target
from v10r.listen.targets import Target
from v10r.ops.status import pipeline_counts
from v10r.queues.base import Queue
from v10r.spec.identifiers import quote_ident, quote_literal

log = logging.getLogger(__name__)

TABLE = f'{quote_ident(V10R_SCHEMA)}."backfill"'
_LOCK = "SELECT pg_catalog.{}($1::pg_catalog.int4, pg_catalog.hashtext($2::pg_catalog.text))"
LOCK_CLASS = ADVISORY_LOCK_KEY & 0x7FFF_FFFF  # apply's key, in the two-key form


class BackfillRunning(V10rError):
    code = "BACKFILL_RUNNING"


@dataclass(frozen=True, slots=True)
class Bookmark:
    fingerprint: str
    after_key: str | None  # the last key published, as JSON; None: from the start
    published: int
    finished: bool


@dataclass(frozen=True, slots=True)
class Outcome:
    enqueued: int
    resumed_after: int = 0  # rows a crashed run had published already
    still_pending: int = 0  # a finished run's rows not embedded yet (nothing enqueued)


async def backfill_target(conn: asyncpg.Connection, target: Target, queue: Queue, *,
                          restart: bool = False, page_size: int = DEFAULT_PAGE_SIZE,
                          progress: Progress | None = None) -> Outcome:
    """Publish the pipeline's stale rows, from its bookmark, under its lock."""
    if not await conn.fetchval(_LOCK.format("pg_try_advisory_lock"), LOCK_CLASS, target.name):
        raise BackfillRunning("a backfill of this pipeline is running in another process",
                              pipeline=target.name,
                              hint="wait for it to finish; `v10r backfill --wait` shows progress")
    try:
        return await _run(conn, target, queue, restart, page_size, progress)
    finally:
        await conn.execute(_LOCK.format("pg_advisory_unlock"), LOCK_CLASS, target.name)


async def _run(conn: asyncpg.Connection, target: Target, queue: Queue, restart: bool,
               page_size: int, progress: Progress | None) -> Outcome:
    mark = await read_bookmark(conn, target.name)
    current = fingerprint(target.pipeline)
    after: Sequence[Any] | None = None
    resumed = 0
    if mark is not None and not restart and mark.fingerprint == current:
        if mark.finished:
            counts = await pipeline_counts(conn, target.pipeline, target.names)
            if counts.pending:
                return Outcome(0, still_pending=counts.pending)
        elif mark.after_key is not None:
            after = await _key_values(conn, target, mark.after_key)
            resumed = mark.published if after is not None else 0
    if not resumed:
        await _start(conn, target.name, current)
    enqueued = await scan_target(conn, target, queue, page_size=page_size, progress=progress,
                                 after=after, published=_recorder(conn, target.name))
    await _execute(conn, f"UPDATE {TABLE} SET finished_at = pg_catalog.now() "
                         "WHERE pipeline OPERATOR(pg_catalog.=) $1", target.name)
    return Outcome(enqueued, resumed_after=resumed)


async def read_bookmark(conn: asyncpg.Connection, pipeline: str) -> Bookmark | None:
    """The pipeline's bookmark; None when there is none (or no table: an older apply)."""
    try:
        row = await conn.fetchrow(
            f"SELECT fingerprint, after_key::pg_catalog.text, published, finished_at "
            f"FROM {TABLE} WHERE pipeline OPERATOR(pg_catalog.=) $1", pipeline)
    except (asyncpg.UndefinedTableError, asyncpg.InsufficientPrivilegeError) as exc:
        log.warning("pipeline %s: cannot read table v10r.backfill (%s), so this backfill "
                    "cannot be resumed; it is created by `v10r apply` on a new database, and "
                    "written by the role that applies", pipeline, exc)
        return None
    if row is None:
        return None
    return Bookmark(row[0], row[1], int(row[2]), row[3] is not None)


async def _start(conn: asyncpg.Connection, pipeline: str, current: str) -> None:
    await _execute(
        conn, f"INSERT INTO {TABLE} (pipeline, fingerprint) VALUES ($1, $2) "
              "ON CONFLICT (pipeline) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, "
              "after_key = NULL, published = 0, started_at = pg_catalog.now(), "
              "finished_at = NULL", pipeline, current)


def _recorder(conn: asyncpg.Connection, pipeline: str) -> Any:
    async def published(rows: int, last_id: str) -> None:
        await _execute(conn, f"UPDATE {TABLE} SET after_key = $2::pg_catalog.jsonb, "
                             "published = published OPERATOR(pg_catalog.+) $3 "
                             "WHERE pipeline OPERATOR(pg_catalog.=) $1", pipeline, last_id, rows)
    return published


async def _execute(conn: asyncpg.Connection, sql: str, *args: Any) -> None:
    """Bookmark writes; without the table (or the right to write it) the run goes on."""
    try:
        await conn.execute(sql, *args)
    except (asyncpg.UndefinedTableError, asyncpg.InsufficientPrivilegeError):
        pass


async def _key_values(conn: asyncpg.Connection, target: Target,
                      after_key: str) -> Sequence[Any] | None:
    """The bookmark's key as values of the key columns' types; None if it is not one."""
    columns = await read_column_types(conn, target.names, target.name)
    if len(columns) == 1:
        scalar = "$1::pg_catalog.jsonb OPERATOR(pg_catalog.#>>) '{}'::pg_catalog.text[]"
        parts = [f"({scalar})::{columns[0].cast}"]
    else:
        parts = [f"($1::pg_catalog.jsonb OPERATOR(pg_catalog.->>) "
                 f"{quote_literal(c.name)}::pg_catalog.text)::{c.cast}" for c in columns]
    try:
        row = await conn.fetchrow(f"SELECT {', '.join(parts)}", after_key)
    except (asyncpg.DataError, asyncpg.PostgresError):
        log.warning("pipeline %s: the backfill bookmark is not a key of the table; starting "
                    "from the beginning", target.name)
        return None
    if row is None or any(value is None for value in row):
        return None
    return tuple(row)


# ---- watching ---------------------------------------------------------------------------

POLL_S = 1.0
DEFAULT_STALL_S = 300.0


class BackfillStalled(V10rError):
    code = "BACKFILL_STALLED"


async def watch(conn: asyncpg.Connection, targets: Sequence[Target], *, show: bool,
                stall_s: float = DEFAULT_STALL_S, poll_s: float = POLL_S) -> None:
    """Until no row of the targets is stale: a progress bar (rows current / rows, rate,
    ETA) from the status counts; gives up when nothing moved for `stall_s` seconds."""
    with _bars(show) as bars:
        moved_at, last = time.monotonic(), -1
        while True:
            counts = [await pipeline_counts(conn, t.pipeline, t.names) for t in targets]
            for c in counts:
                bars.show(c.pipeline, c.current, c.rows)
            done = sum(c.current for c in counts)
            if not any(c.pending for c in counts):
                return
            if done != last:
                moved_at, last = time.monotonic(), done
            elif time.monotonic() - moved_at > stall_s:
                pending = sum(c.pending for c in counts)
                raise BackfillStalled(
                    f"no row was embedded for {stall_s:.0f}s; {pending:,} row(s) still stale",
                    hint="check that workers run (`v10r status`), and `v10r dlq list`")
            await asyncio.sleep(poll_s)


class _Bars:
    def __init__(self, bar: Any) -> None:
        self.bar = bar
        self.tasks: dict[str, Any] = {}

    def show(self, pipeline: str, current: int, rows: int) -> None:
        if self.bar is None:
            return
        if pipeline not in self.tasks:
            self.tasks[pipeline] = self.bar.add_task(pipeline, total=rows, completed=current)
        self.bar.update(self.tasks[pipeline], completed=current, total=rows)


@contextmanager
def _bars(show: bool) -> Iterator[_Bars]:
    """Rows current / rows, percent, rate and ETA per pipeline, on stderr."""
    if not show:
        yield _Bars(None)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text(f"{task.speed:,.0f} rows/s" if task.speed else "… rows/s")

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TaskProgressColumn(), Rate(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        yield _Bars(bar)
