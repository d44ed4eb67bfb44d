"""The processing core every queue shares: tasks in, vectors written, an outcome per task.

fetch (one query) → preprocess + hash → skip unchanged → embed (one provider call,
bisected on a bad input) → guarded write (one statement). Whatever is wrong with one
task — a key that is not a key, a text the provider refuses, a vector that cannot be
stored — fails that task alone; an authentication error stops the batch, since no
input could succeed. The write only lands where
the row's current text still hashes to what was embedded, so a slow worker never
overwrites the vector of a newer text; that newer text has its own task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import asyncpg
import numpy as np

from v10r.compile.content_hash import fingerprint, source_hash, stored_hash
from v10r.compile.names import PipelineNames
from v10r.errors import (
    PlanError,
    ProviderAuthError,
    ProviderError,
    ProviderUnavailable,
    V10rError,
)
from v10r.keys import ColumnType, InvalidKey, key_texts, read_column_types
from v10r.preprocess import preprocess
from v10r.providers.base import Provider
from v10r.redact import printable
from v10r.spec.model import Pipeline
from v10r.tasks import Task
from v10r.work import sql
from v10r.work.vectors import encode_rows, vector_problems

log = logging.getLogger(__name__)

EMPTY_TEXT_NOTE = "empty text"
# Text a batch hashes and preprocesses on the event loop (~1.5 ms of CPU); a bigger batch
# goes to a thread. The hop costs ~0.7 ms (a GIL hand-over and two futures), which for a
# usual batch of a few hundred short rows was a sixth of the processing core's CPU.
ON_LOOP_CHARS, ON_LOOP_ROWS = 128_000, 512
# What a key that does not cast to its column's type raises (a domain's CHECK included).
_BAD_KEY_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)


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
    # Set when tasks failed because the provider is down (not because of their input):
    # what a runtime pauses on instead of spending those tasks' attempts.
    unavailable: ProviderUnavailable | None = None

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
    error: V10rError | None = None  # this row failed (a bad key, the provider, its vector)
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
        statements = await self._prepare()
        rows = self._rows(tasks, outcomes, statements.keys)
        embedded = 0
        if rows:
            embedded = await self._settle(statements, rows, tasks, self.read_pool)
        if rows and self.read_pool is not self.write_pool:
            # A replica may lag: a row it showed as gone, unchanged or superseded is read
            # again from the primary, once (a newer change after that has its own task).
            again = [i for i, r in enumerate(rows) if r.error is None
                     and r.status is not Status.WRITTEN]
            for i in again:
                rows[i] = _Row(rows[i].key, rows[i].tasks)
            if again:
                embedded += await self._settle(statements, [rows[i] for i in again], tasks,
                                               self.write_pool)
        for row in rows:
            outcome = _outcome(row)
            for index in row.tasks:
                outcomes[index] = outcome
        down = next((r.error for r in rows if isinstance(r.error, ProviderUnavailable)), None)
        return BatchOutcome([o or TaskOutcome(Status.FAILED, "not processed") for o in outcomes],
                            embedded, down)

    async def _settle(self, statements: sql.Statements, rows: list[_Row],
                      tasks: Sequence[Task], pool: asyncpg.Pool) -> int:
        """Fetch from `pool`, embed what changed, guarded write; the rows embedded."""
        await self._fetch(statements, rows, pool)
        chars = sum(len(v) for row in rows if row.values for v in row.values if v)
        pending = (self._hash_and_select(rows)
                   if chars <= ON_LOOP_CHARS and len(rows) <= ON_LOOP_ROWS
                   else await asyncio.to_thread(self._hash_and_select, rows))
        live = any(tasks[i].origin == "live" for row in pending for i in row.tasks)
        embedded = await self._embed(pending, "live" if live else "backfill")
        await self._write(statements, rows)
        return embedded

    def _rows(self, tasks: Sequence[Task], outcomes: list[TaskOutcome | None],
              keys: Sequence[ColumnType]) -> list[_Row]:
        """Distinct rows of the batch; tasks that cannot be read fail here, for good."""
        by_key: dict[tuple[str, ...], _Row] = {}
        for index, task in enumerate(tasks):
            try:
                key = self._key_of(task, keys)
            except ValueError as exc:
                outcomes[index] = TaskOutcome(Status.FAILED, str(exc), retryable=False)
                continue
            by_key.setdefault(key, _Row(key)).tasks.append(index)
        return list(by_key.values())

    def _key_of(self, task: Task, keys: Sequence[ColumnType]) -> tuple[str, ...]:
        """The task's key as text per key column, checked against the columns' types."""
        if task.pipeline != self.pipeline.name:
            raise ValueError(f"task of pipeline {task.pipeline!r} reached pipeline "
                             f"{self.pipeline.name!r}")
        row_id = task.id
        if len(keys) == 1 and isinstance(row_id, dict) and set(row_id) == {keys[0].name}:
            row_id = row_id[keys[0].name]
        try:
            return key_texts(row_id, keys)
        except InvalidKey as exc:
            raise ValueError(f"task id is not a key of {self.names.display_table}: {exc}") from None

    async def _prepare(self) -> sql.Statements:
        if self._statements is None:
            async with self.read_pool.acquire() as conn:
                keys = await read_column_types(conn, self.names, self.pipeline.name)
                (vector,) = await read_column_types(conn, self.names, self.pipeline.name,
                                                    (self.names.embedding,))
            self._statements = sql.statements(self.pipeline, self.names, keys, vector)
        return self._statements

    async def _fetch(self, statements: sql.Statements, rows: list[_Row],
                     pool: asyncpg.Pool) -> None:
        """Read the batch's rows in one query. A key that does not cast to its column's
        type (a forged or corrupted task) fails only itself: it is found and the rest read."""
        async with pool.acquire() as conn:
            try:
                records = await self._read(conn, statements, rows)
            except _BAD_KEY_ERRORS:
                await self._fail_bad_keys(conn, statements.keys, rows)
                rows = [row for row in rows if row.error is None]
                records = await self._read(conn, statements, rows) if rows else []
        width = len(self.names.columns)
        for record in records:
            row = rows[record[0] - 1]
            row.values = tuple(record[1:1 + width])
            row.db_hash, row.db_model = record[1 + width], record[2 + width]

    async def _read(self, conn: asyncpg.Connection, statements: sql.Statements,
                    rows: list[_Row]) -> list[asyncpg.Record]:
        key_arrays = [[row.key[i] for row in rows] for i in range(len(statements.keys))]
        return await _run(conn.fetch, statements.fetch, *key_arrays, pipeline=self.pipeline.name)

    async def _fail_bad_keys(self, conn: asyncpg.Connection, keys: Sequence[ColumnType],
                             rows: list[_Row]) -> None:
        """One cast per key value, only after a batch's read failed on one."""
        for row in rows:
            for key, text in zip(keys, row.key):
                try:
                    await conn.fetchval(sql.check_key_sql(key), text)
                except _BAD_KEY_ERRORS as exc:
                    row.error = V10rError(f"task key is not a {key.type} for key column "
                                          f"{key.name!r}: {printable(str(exc)[:200])}",
                                          pipeline=self.pipeline.name)
                    break

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
        except ProviderAuthError:
            raise  # no input can succeed: stop the batch, bisecting would only repeat it
        except ProviderError as exc:
            if exc.retryable or len(rows) == 1:
                for row in rows:
                    row.error = exc
                return len(rows)
            middle = len(rows) // 2
            return (len(rows) + await self._embed(rows[:middle], priority)
                    + await self._embed(rows[middle:], priority))
        self._take(rows, matrix)
        return len(rows)

    def _take(self, rows: list[_Row], matrix: np.ndarray) -> None:
        """Each row gets its vector, or the reason it cannot be stored (that row alone)."""
        shape_error = self._shape_error(matrix, len(rows))
        if shape_error is not None:  # no vector can be trusted: each row fails with the fix
            for row in rows:
                row.error = shape_error
            return
        problems = vector_problems(matrix, self.pipeline.target.type)
        for row, vector, problem in zip(rows, matrix, problems):
            if problem is None:
                row.vector = vector
                continue
            row.error = ProviderError(
                f"provider {self.provider.name} returned {problem} for this row's text",
                pipeline=self.pipeline.name,
                hint="store vectors as `target: {type: vector}`" if "halfvec" in problem
                else "the row is left stale; check the model, or the row's text")

    def _shape_error(self, matrix: np.ndarray, count: int) -> ProviderError | None:
        expected = (count, self.pipeline.dimensions)
        if getattr(matrix, "shape", None) == expected:
            return None
        return ProviderError(
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
        return TaskOutcome(Status.FAILED, _error_text(row.error),
                           getattr(row.error, "retryable", False))
    return TaskOutcome(row.status)


def _error_text(exc: V10rError) -> str:
    return exc.message if not exc.hint else f"{exc.message} (hint: {exc.hint})"


async def _run(method, statement: str, *args: object, pipeline: str):  # type: ignore[no-untyped-def]
    """Run a statement; schema problems become a `PlanError` with the fix."""
    try:
        return await method(statement, *args)
    except (asyncpg.UndefinedColumnError, asyncpg.UndefinedTableError) as exc:
        raise PlanError(f"the database does not have what the pipeline needs: {exc}",
                        pipeline=pipeline, hint="run `v10r apply` for this pipeline") from None
