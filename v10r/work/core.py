"""The processing core every queue shares: tasks in, vectors written, an outcome per task.

fetch (one query) → preprocess + hash → skip unchanged → embed (one provider call,
bisected on a bad input) → guarded write (one statement). The write only lands where
the row's current text still hashes to what was embedded, so a slow worker never
overwrites the vector of a newer text; that newer text has its own task.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import asyncpg
import numpy as np

from v10r.compile.content_hash import fingerprint, source_hash, stored_hash
from v10r.compile.names import PipelineNames
from v10r.errors import PlanError, ProviderError
from v10r.preprocess import preprocess
from v10r.providers.base import Provider
from v10r.spec.model import Pipeline
from v10r.tasks import Task
from v10r.work import sql
from v10r.work.vectors import encode_rows

log = logging.getLogger(__name__)

EMPTY_TEXT_NOTE = "empty text"


class Status(StrEnum):
    WRITTEN = "written"  # vector (or empty-text marker) written
    UNCHANGED = "unchanged"  # stored hash and model already match: no embedding call
    MISSING = "missing"  # row deleted, or outside the pipeline's filter
    SUPERSEDED = "superseded"  # text changed after the fetch; its own task writes it
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    status: Status
    error: str | None = None
    retryable: bool = False

    @property
    def done(self) -> bool:
        """Ackable: nothing more to do for this task."""
        return self.status is not Status.FAILED


@dataclass(slots=True)
class BatchOutcome:
    """One `TaskOutcome` per task, in task order, plus what it cost."""

    outcomes: list[TaskOutcome]
    embedded: int = 0  # texts sent to the provider (bisection retries included)

    def count(self, status: Status) -> int:
        return sum(o.status is status for o in self.outcomes)

    def indices(self, *, done: bool | None = None, retryable: bool | None = None) -> list[int]:
        return [i for i, o in enumerate(self.outcomes)
                if (done is None or o.done == done)
                and (retryable is None or (not o.done and o.retryable == retryable))]


@dataclass(slots=True)
class _Row:
    """One distinct row of the batch, from fetch to write."""

    key: tuple[str, ...]  # key values as text, in key-column order
    tasks: list[int] = field(default_factory=list)
    values: tuple[str | None, ...] | None = None  # None: not fetched (gone or filtered out)
    db_hash: str | None = None
    db_model: str | None = None
    text: str = ""
    source: str = ""
    stored: str = ""
    vector: np.ndarray | None = None
    error: ProviderError | None = None
    status: Status = Status.MISSING


class BatchProcessor:
    """Processes batches of one pipeline's tasks; safe to share between asyncio tasks."""

    def __init__(self, pipeline: Pipeline, names: PipelineNames, read_pool: asyncpg.Pool,
                 write_pool: asyncpg.Pool, provider: Provider) -> None:
        self.pipeline = pipeline
        self.names = names
        self.read_pool = read_pool
        self.write_pool = write_pool
        self.provider = provider
        self._fingerprint = fingerprint(pipeline)
        self._statements: sql.Statements | None = None
        self._max_chars = min(pipeline.embedding.max_input_chars, provider.max_input_chars)

    async def process(self, tasks: Sequence[Task]) -> BatchOutcome:
        outcomes: list[TaskOutcome | None] = [None] * len(tasks)
        rows = self._rows(tasks, outcomes)
        embedded = 0
        if rows:
            statements = await self._prepare()
            await self._fetch(statements, rows)
            pending = await asyncio.to_thread(self._hash_and_select, rows)
            live = any(tasks[i].origin == "live" for row in pending for i in row.tasks)
            embedded = await self._embed(pending, "live" if live else "backfill")
            await self._write(statements, rows)
        for row in rows:
            outcome = _outcome(row)
            for index in row.tasks:
                outcomes[index] = outcome
        return BatchOutcome([o or TaskOutcome(Status.FAILED, "not processed") for o in outcomes],
                            embedded)

    def _rows(self, tasks: Sequence[Task], outcomes: list[TaskOutcome | None]) -> list[_Row]:
        """Distinct rows of the batch; tasks that cannot be read fail here, for good."""
        by_key: dict[tuple[str, ...], _Row] = {}
        for index, task in enumerate(tasks):
            try:
                key = self._key_of(task)
            except ValueError as exc:
                outcomes[index] = TaskOutcome(Status.FAILED, str(exc), retryable=False)
                continue
            by_key.setdefault(key, _Row(key)).tasks.append(index)
        return list(by_key.values())

    def _key_of(self, task: Task) -> tuple[str, ...]:
        if task.pipeline != self.pipeline.name:
            raise ValueError(f"task of pipeline {task.pipeline!r} reached pipeline "
                             f"{self.pipeline.name!r}")
        columns = self.names.key
        if len(columns) == 1:
            value = task.id[columns[0]] if isinstance(task.id, dict) and len(task.id) == 1 \
                and columns[0] in task.id else task.id
            return (_key_text(value, columns[0]),)
        if not isinstance(task.id, dict) or set(task.id) != set(columns):
            raise ValueError(f"task id {task.id!r} does not have the key columns "
                             f"{', '.join(columns)}")
        return tuple(_key_text(task.id[c], c) for c in columns)

    async def _prepare(self) -> sql.Statements:
        if self._statements is None:
            async with self.read_pool.acquire() as conn:
                keys = await sql.key_columns(conn, self.pipeline, self.names)
            self._statements = sql.statements(self.pipeline, self.names, keys)
        return self._statements

    async def _fetch(self, statements: sql.Statements, rows: list[_Row]) -> None:
        key_arrays = [[row.key[i] for row in rows] for i in range(len(statements.keys))]
        async with self.read_pool.acquire() as conn:
            records = await _run(conn.fetch, statements.fetch, *key_arrays,
                                 pipeline=self.pipeline.name)
        width = len(self.names.columns)
        for record in records:
            row = rows[record[0] - 1]
            row.values = tuple(record[1:1 + width])
            row.db_hash, row.db_model = record[1 + width], record[2 + width]

    def _hash_and_select(self, rows: list[_Row]) -> list[_Row]:
        """CPU part, run in a thread: preprocess and hash; the rows needing a vector."""
        pending = []
        columns = self.names.columns
        for row in rows:
            if row.values is None:
                continue
            row.source = source_hash(row.values)
            row.stored = stored_hash(self._fingerprint, row.source)
            if row.db_hash == row.stored and row.db_model == self.pipeline.model:
                row.status = Status.UNCHANGED
                continue
            row.text = preprocess(self.pipeline, dict(zip(columns, row.values)),
                                  max_input_chars=self._max_chars)
            row.status = Status.WRITTEN  # provisional, until the write confirms it
            if row.text:
                pending.append(row)
        return pending

    async def _embed(self, rows: list[_Row], priority: str = "live") -> int:
        """Vectors for `rows`; a non-retryable error is bisected down to the bad rows."""
        if not rows:
            return 0
        try:
            matrix = await self.provider.embed([row.text for row in rows], priority=priority)
        except ProviderError as exc:
            if exc.retryable or len(rows) == 1:
                for row in rows:
                    row.error = exc
                return len(rows)
            middle = len(rows) // 2
            return (len(rows) + await self._embed(rows[:middle], priority)
                    + await self._embed(rows[middle:], priority))
        self._check_shape(matrix, len(rows))
        for row, vector in zip(rows, matrix):
            row.vector = vector
        return len(rows)

    def _check_shape(self, matrix: np.ndarray, count: int) -> None:
        expected = (count, self.pipeline.dimensions)
        if getattr(matrix, "shape", None) != expected:
            raise ProviderError(
                f"provider returned vectors of shape {getattr(matrix, 'shape', None)}, "
                f"expected {expected}",
                pipeline=self.pipeline.name,
                hint="set `embedding.dimensions` to what the model returns",
            )

    async def _write(self, statements: sql.Statements, rows: list[_Row]) -> None:
        ready = [r for r in rows if r.status is Status.WRITTEN and r.error is None]
        if not ready:
            return
        vectors: list[object] = [None] * len(ready)
        with_vector = [i for i, r in enumerate(ready) if r.vector is not None]
        if with_vector:
            encoded = encode_rows(np.stack([ready[i].vector for i in with_vector]),
                                  self.pipeline.target.type)
            for i, value in zip(with_vector, encoded):
                vectors[i] = value
        args = [[r.key[i] for r in ready] for i in range(len(statements.keys))]
        args += [vectors, [r.stored for r in ready], [r.source for r in ready],
                 [None if r.vector is not None else EMPTY_TEXT_NOTE for r in ready],
                 list(range(len(ready))), self.pipeline.model]
        async with self.write_pool.acquire() as conn:
            written = await _run(conn.fetch, statements.write, *args, pipeline=self.pipeline.name)
        landed = {record[0] for record in written}
        for i, row in enumerate(ready):
            if i not in landed:
                row.status = Status.SUPERSEDED


def _outcome(row: _Row) -> TaskOutcome:
    if row.error is not None:
        return TaskOutcome(Status.FAILED, _error_text(row.error), row.error.retryable)
    return TaskOutcome(row.status)


def _error_text(exc: ProviderError) -> str:
    return exc.message if not exc.hint else f"{exc.message} (hint: {exc.hint})"


def _key_text(value: object, column: str) -> str:
    match value:
        case None:
            raise ValueError(f"task has no value for key column {column!r}")
        case bool():
            return "true" if value else "false"
        case str():
            return value
        case int() | float():
            return str(value)
        case dict() | list():
            return json.dumps(value)
    return str(value)


async def _run(method, statement: str, *args: object, pipeline: str):  # type: ignore[no-untyped-def]
    """Run a statement; schema problems become a `PlanError` with the fix."""
    try:
        return await method(statement, *args)
    except (asyncpg.UndefinedColumnError, asyncpg.UndefinedTableError) as exc:
        raise PlanError(f"the database does not have what the pipeline needs: {exc}",
                        pipeline=pipeline, hint="run `v10r apply` for this pipeline") from None
