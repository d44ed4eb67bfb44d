"""`apply_pipelines`: run the plan. One transaction under v10r's advisory lock (its DDL
waits at most `lock_timeout`, see `locks`), then the concurrent index builds, which
cannot run inside a transaction.

The plan is recomputed after the lock is taken, so a second, concurrent apply sees the
first one's result and has nothing to do. The session also holds the lock (taken by
polling, never by a blocking wait) until the index builds finish, so two applies never
build or drop the same index at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, replace

import asyncpg

from v10r.compile.ddl import ADVISORY_LOCK_KEY
from v10r.errors import PlanError
from v10r.reconcile.columns import DEFAULT_INDEX_AFTER_ROWS
from v10r.reconcile.diff import DatabasePlan, DiffOptions
from v10r.reconcile.locks import LockBusy, LockSettings, with_retries
from v10r.reconcile.ops import CreateIndex, Operation, destructive, op_args
from v10r.reconcile.plan import Plan, by_database, open_checked, plan_database
from v10r.reconcile.specset import SpecSet
from v10r.spec.model import Pipeline

LOCK_TIMEOUT_S = 600.0
LOCK_POLL_S = 0.1


Approval = bool | frozenset[str]


@dataclass(frozen=True, slots=True)
class ApplyResult:
    plan: Plan  # what was executed (empty when there was nothing to do)

    @property
    def changed(self) -> bool:
        return self.plan.has_changes


async def apply_pipelines(pipelines: Sequence[Pipeline], *, prune: bool = False,
                          drop_columns: bool = False, approve: Approval = False,
                          spec_set: SpecSet | None = None,
                          index_after_rows: int = DEFAULT_INDEX_AFTER_ROWS,
                          locks: LockSettings | None = None) -> ApplyResult:
    """Make every database match the specs; re-running it is a no-op.

    Destructive operations run only when approved: `approve=True`, or the set of their
    descriptions as the user confirmed them (the plan is recomputed under the lock; if it
    now destroys something else, nothing runs)."""
    done = []
    options = DiffOptions(prune, drop_columns, spec_set or SpecSet(),
                          index_after_rows=index_after_rows)
    for database, group in by_database(pipelines):
        conn = await open_checked(database, group)
        try:
            await _lock(conn)
            try:
                done.append(await _apply_one(conn, group, database.name, options, approve,
                                             locks or LockSettings()))
            finally:
                await conn.execute(_lock_sql("pg_advisory_unlock"), ADVISORY_LOCK_KEY)
        finally:
            await conn.close()
    return ApplyResult(Plan(tuple(done)))


async def _lock(conn: asyncpg.Connection) -> None:
    deadline = time.monotonic() + LOCK_TIMEOUT_S
    while not await conn.fetchval(_lock_sql("pg_try_advisory_lock"), ADVISORY_LOCK_KEY):
        if time.monotonic() > deadline:
            raise PlanError(f"another v10r apply has held the lock for {LOCK_TIMEOUT_S:.0f}s",
                            hint="wait for it to finish, or find it in pg_stat_activity")
        await asyncio.sleep(LOCK_POLL_S)


async def _apply_one(conn: asyncpg.Connection, group: list[Pipeline], name: str,
                     options: DiffOptions, approve: Approval, locks: LockSettings
                     ) -> DatabasePlan:
    """One round, and a second one when the first only built the index a finished
    re-embedding waits for before its cutover."""
    def attempt() -> Awaitable[DatabasePlan]:
        return _round(conn, group, name, options, approve, locks)

    first = await with_retries(conn, attempt, locks)
    nexts = {f.names.embedding for f in first.filling.values()} - {
        c.names.embedding for c in first.compiled}
    if not any(isinstance(op, CreateIndex) and op.index.column in nexts
               for op in first.operations):
        return first
    second = await with_retries(conn, attempt, locks)
    return replace(second, operations=first.operations + second.operations)


async def _round(conn: asyncpg.Connection, group: list[Pipeline], name: str,
                 options: DiffOptions, approve: Approval, locks: LockSettings
                 ) -> DatabasePlan:
    async with conn.transaction():
        await conn.execute(_lock_sql("pg_advisory_xact_lock"), ADVISORY_LOCK_KEY)
        await conn.execute(locks.set_sql())
        try:
            dbplan, _ = await plan_database(conn, group, options, name)
        except asyncpg.LockNotAvailableError:  # counting rows behind an exclusive lock
            raise LockBusy("reading the tables to plan") from None
        check_approved(dbplan.operations, approve)
        for op in dbplan.operations:
            if op.transactional:
                await execute(conn, op)
    for op in dbplan.operations:
        if not op.transactional:
            await execute(conn, op)
    return dbplan


def check_approved(operations: Sequence[Operation], approve: Approval) -> None:
    """`PlanError` unless every destructive operation was approved."""
    if approve is True:
        return
    allowed = approve if isinstance(approve, frozenset) else frozenset()
    pending = [op.describe() for op in destructive(operations) if op.describe() not in allowed]
    if pending:
        listing = "\n".join(f"  - {text}" for text in pending)
        raise PlanError(f"refusing to run destructive operation(s) that were not confirmed:"
                        f"\n{listing}", hint="review them with `v10r plan`, then confirm at "
                        "the prompt of `v10r apply` or pass `--yes`")


async def execute(conn: asyncpg.Connection, op: Operation) -> None:
    """Run one operation's statements; a database refusal becomes a `PlanError`."""
    try:
        for sql in op.sql:
            args = op_args(op)
            await (conn.execute(sql, *args) if args else conn.execute(sql))
    except asyncpg.LockNotAvailableError:
        raise LockBusy.of(op) from None
    except asyncpg.PostgresError as exc:
        hint = ("run v10r apply as the owner of the tables (and with CREATE on the database)"
                if isinstance(exc, asyncpg.InsufficientPrivilegeError)
                else "fix the cause and run `v10r apply` again; a failed index build is "
                "rebuilt by the next apply")
        raise PlanError(f"{op.describe()} failed: {exc}", pipeline=op.pipeline,
                        hint=hint) from None


def _lock_sql(function: str) -> str:
    """Qualified, with a typed argument: a role's own `public.pg_advisory_lock(text)` is
    never a better match."""
    return f"SELECT pg_catalog.{function}($1::pg_catalog.int8)"
