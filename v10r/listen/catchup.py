"""The catch-up scan: find every row whose vector is missing or stale, and enqueue it.

NOTIFY is a fast path, not a guarantee (it is lost while the listener is down, and bulk
statements send one `scan` notification instead of one per row). The stored hash makes
"what is stale?" a query: rows matching the filter whose hash is NULL or differs from
the hash of their current text under the current fingerprint. The scan walks the key
in order with keyset pagination, so memory stays constant whatever the table size.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg

from v10r import db
from v10r.compile.content_hash import fingerprint, stored_hash_sql
from v10r.compile.ddl import key_sql
from v10r.compile.filter import filter_sql, op
from v10r.listen.targets import Target
from v10r.queues.base import Queue
from v10r.spec.identifiers import quote_ident

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 1000
ALIAS = "src"
ID_COLUMN = "__v10r_id"


@dataclass(frozen=True, slots=True)
class ScanQuery:
    """The two statements of a keyset scan: the first page, and every page after it."""

    first: str
    next: str
    key_count: int


def scan_query(target: Target, page_size: int = DEFAULT_PAGE_SIZE) -> ScanQuery:
    """SQL selecting up to `page_size` stale rows' keys (raw, and as the task's JSON id).

    Every call and operator is schema-qualified (the listener's search path may hold a
    schema other roles can create in); ordering and the keyset bound use the same
    `pg_catalog` operators, so a page never skips a row."""
    names, pipeline = target.names, target.pipeline
    alias = quote_ident(ALIAS)
    keys = [f"{alias}.{quote_ident(k)}" for k in names.key]
    row_id = f"{key_sql(names.key, alias)}::pg_catalog.text"
    hash_ref = f"{alias}.{quote_ident(names.hash)}"
    current = stored_hash_sql(names.columns, fingerprint(pipeline), ALIAS)
    # A row with a NULL key cannot be addressed by a task: it is left out, not sent.
    present = " AND ".join(f"{k} IS NOT NULL" for k in keys)
    where = (f"{present} AND ({filter_sql(pipeline.source.filter, alias)}) "
             f"AND ({hash_ref} IS NULL OR {hash_ref} {op('<>')} {current})")
    head = (f"SELECT {', '.join(keys)}, {row_id} AS {quote_ident(ID_COLUMN)} "
            f"FROM {names.qualified_table} AS {alias} WHERE {where}")
    order = ", ".join(f"{k} USING {op('<')}" for k in keys)
    tail = f" ORDER BY {order} LIMIT {int(page_size)}"
    return ScanQuery(first=head + tail, next=f"{head} AND {_after(keys)}{tail}",
                     key_count=len(keys))


def _after(keys: Sequence[str]) -> str:
    """`(k1, k2, …) > ($1, $2, …)` spelled out with qualified operators: the row
    comparison form looks its operators up in the search path."""
    terms = []
    for i, key in enumerate(keys):
        equal = [f"{k} {op('=')} ${j + 1}" for j, k in enumerate(keys[:i])]
        terms.append(" AND ".join([*equal, f"{key} {op('>')} ${i + 1}"]))
    bound = " OR ".join(f"({t})" for t in terms)
    # The leading column's bound on its own lets the planner start from an index.
    return f"{keys[0]} {op('>=')} $1 AND ({bound})" if len(keys) > 1 else terms[0]


class Progress(Protocol):
    def advance(self, pipeline: str, rows: int) -> None: ...


@dataclass
class ScanResult:
    """Rows enqueued per pipeline by one catch-up run."""

    enqueued: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.enqueued.values())


class PagePublished(Protocol):
    async def __call__(self, rows: int, last_id: str) -> None: ...


async def scan_target(conn: asyncpg.Connection, target: Target, queue: Queue, *,
                      page_size: int = DEFAULT_PAGE_SIZE,
                      progress: Progress | None = None, after: Sequence[Any] | None = None,
                      published: PagePublished | None = None) -> int:
    """Enqueue every stale row of one pipeline, one page (one publish) at a time.

    `after`: the key values to start after (a resumed backfill); `published` is told of
    each page once the broker has it, with the page's last key as JSON.
    """
    query = scan_query(target, page_size)
    rows = await (conn.fetch(query.next, *after) if after else conn.fetch(query.first))
    enqueued = 0
    while rows:
        tasks = [target.task_from_json(row[ID_COLUMN], "catchup") for row in rows]
        await queue.publish(target.name, tasks)
        enqueued += len(tasks)
        if published is not None:
            await published(len(tasks), rows[-1][ID_COLUMN])
        if progress is not None:
            progress.advance(target.name, len(tasks))
        if len(rows) < page_size:
            break
        last = rows[-1]
        rows = await conn.fetch(query.next, *(last[i] for i in range(query.key_count)))
    return enqueued


async def catch_up(targets: Sequence[Target], queue: Queue, *,
                   page_size: int = DEFAULT_PAGE_SIZE,
                   interactive: bool | None = None) -> ScanResult:
    """Scan every target over its database's read connection; returns counts."""
    result = ScanResult()
    show = sys.stderr.isatty() if interactive is None else interactive
    with progress_bar(show) as progress:
        for database, group in _by_database(targets):
            conn = await db.connect_caught_up(database, pipeline=group[0].name)
            try:
                for target in group:
                    count = await scan_target(conn, target, queue, page_size=page_size,
                                              progress=progress)
                    result.enqueued[target.name] = count
                    log.info("catch-up: %d row(s) of %s enqueued for pipeline %s",
                             count, target.table, target.name)
            finally:
                await conn.close()
    return result


def _by_database(targets: Sequence[Target]) -> list[tuple[Any, list[Target]]]:
    groups: dict[Any, list[Target]] = {}
    for target in targets:
        groups.setdefault(target.pipeline.database, []).append(target)
    return list(groups.items())


class _RichProgress:
    def __init__(self, bar: Any) -> None:
        self._bar = bar
        self._tasks: dict[str, Any] = {}

    def advance(self, pipeline: str, rows: int) -> None:
        if pipeline not in self._tasks:
            self._tasks[pipeline] = self._bar.add_task(f"catch-up {pipeline}", total=None)
        self._bar.advance(self._tasks[pipeline], rows)


@contextmanager
def progress_bar(show: bool) -> Iterator[Progress | None]:
    """A rich progress display on stderr when it is a terminal; nothing otherwise."""
    if not show:
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress as RichProgress
    from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"),
               TextColumn("{task.completed:,} rows enqueued"), TimeElapsedColumn())
    with RichProgress(*columns, console=Console(stderr=True), transient=False) as bar:
        yield _RichProgress(bar)
