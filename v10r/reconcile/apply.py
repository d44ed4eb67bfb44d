"""`apply_pipelines`: run the plan. One transaction under v10r's advisory lock, then the
concurrent index builds, which cannot run inside a transaction.

The plan is recomputed after the lock is taken, so a second, concurrent apply sees the
first one's result and has nothing to do. The session also holds the lock (taken by
polling, never by a blocking wait) until the index builds finish, so two applies never
build or drop the same index at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from v10r.compile.ddl import ADVISORY_LOCK_KEY
from v10r.errors import PlanError
from v10r.reconcile.diff import DatabasePlan, diff
from v10r.reconcile.introspect import introspect
from v10r.reconcile.ops import Operation, op_args
from v10r.reconcile.plan import Plan, by_database, open_checked, tables_of
from v10r.spec.model import Pipeline

LOCK_TIMEOUT_S = 600.0
LOCK_POLL_S = 0.1


@dataclass(frozen=True, slots=True)
class ApplyResult:
    plan: Plan  # what was executed (empty when there was nothing to do)

    @property
    def changed(self) -> bool:
        return self.plan.has_changes


async def apply_pipelines(pipelines: Sequence[Pipeline], *, prune: bool = False,
                          drop_columns: bool = False) -> ApplyResult:
    """Make every database match the specs; re-running it is a no-op."""
    done = []
    for database, group in by_database(pipelines):
        conn = await open_checked(database, group)
        try:
            await _lock(conn)
            try:
                done.append(await _apply_one(conn, group, database.name, prune, drop_columns))
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
        finally:
            await conn.close()
    return ApplyResult(Plan(tuple(done)))


async def _lock(conn: asyncpg.Connection) -> None:
    deadline = time.monotonic() + LOCK_TIMEOUT_S
    while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", ADVISORY_LOCK_KEY):
        if time.monotonic() > deadline:
            raise PlanError(f"another v10r apply has held the lock for {LOCK_TIMEOUT_S:.0f}s",
                            hint="wait for it to finish, or find it in pg_stat_activity")
        await asyncio.sleep(LOCK_POLL_S)


async def _apply_one(conn: asyncpg.Connection, group: list[Pipeline], name: str, prune: bool,
                     drop_columns: bool) -> DatabasePlan:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", ADVISORY_LOCK_KEY)
        state = await introspect(conn, tables_of(group))
        dbplan = diff(group, state, prune=prune, drop_columns=drop_columns, database=name)
        for op in dbplan.operations:
            if op.transactional:
                await execute(conn, op)
    for op in dbplan.operations:
        if not op.transactional:
            await execute(conn, op)
    return dbplan


async def execute(conn: asyncpg.Connection, op: Operation) -> None:
    """Run one operation's statements; a database refusal becomes a `PlanError`."""
    try:
        for sql in op.sql:
            args = op_args(op)
            await (conn.execute(sql, *args) if args else conn.execute(sql))
    except asyncpg.PostgresError as exc:
        hint = ("run v10r apply as the owner of the tables (and with CREATE on the database)"
                if isinstance(exc, asyncpg.InsufficientPrivilegeError)
                else "fix the cause and run `v10r apply` again; a failed index build is "
                "rebuilt by the next apply")
        raise PlanError(f"{op.describe()} failed: {exc}", pipeline=op.pipeline,
                        hint=hint) from None
