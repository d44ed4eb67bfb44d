"""DDL that waits briefly, then steps back: a bounded `lock_timeout` with retries.

`ALTER TABLE` needs an exclusive lock. Behind a long transaction it would wait forever,
and every query on that table would queue behind it. So the apply transaction sets a
short `lock_timeout`; when it expires the whole transaction rolls back (nothing half
done), v10r says who holds the table, waits with backoff and tries again, then gives up
with a clear error. Concurrent index builds run outside it: they block no reader or
writer while they wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import asyncpg

from v10r.errors import PlanError
from v10r.reconcile.ops import Operation

log = logging.getLogger(__name__)
T = TypeVar("T")

HOLDERS_SQL = """
SELECT a.pid, coalesce(a.state, '?') AS state,
       extract(epoch FROM pg_catalog.now() - coalesce(a.xact_start, a.query_start))::int
         AS seconds,
       pg_catalog.left(pg_catalog.regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 80)
         AS query
FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
WHERE l.relation = pg_catalog.to_regclass($1) AND l.granted
  AND l.pid <> pg_catalog.pg_backend_pid()
ORDER BY a.xact_start NULLS LAST LIMIT 3
"""


@dataclass(frozen=True, slots=True)
class LockSettings:
    timeout_s: float = 5.0  # `lock_timeout` of the apply transaction
    retries: int = 5  # further attempts after the first
    backoff_s: float = 1.0  # first pause; doubles, at most `max_backoff_s`
    max_backoff_s: float = 30.0

    def set_sql(self) -> str:
        return f"SET LOCAL lock_timeout = '{max(1, int(self.timeout_s * 1000))}ms'"


class LockBusy(Exception):
    """A statement could not get its lock within `lock_timeout` (the transaction rolled
    back). `relation` is the quoted `schema.table` when known."""

    def __init__(self, what: str, relation: str | None = None,
                 pipeline: str | None = None) -> None:
        super().__init__(what)
        self.what, self.relation, self.pipeline = what, relation, pipeline

    @classmethod
    def of(cls, op: Operation) -> LockBusy:
        from v10r.spec.identifiers import qualified

        schema, table = getattr(op, "schema", None), getattr(op, "table", None)
        relation = qualified(schema, table) if schema and table else None
        return cls(op.describe(), relation, op.pipeline)


async def holders(conn: asyncpg.Connection, relation: str | None) -> str:
    """Who holds `relation`, for the message: pid, state, age and query."""
    if relation is None:
        return "another session"
    rows = await conn.fetch(HOLDERS_SQL, relation)
    if not rows:
        return "another session (gone now)"
    return "; ".join(f"pid {r['pid']} ({r['state']} for {r['seconds']}s: {r['query']!r})"
                     for r in rows)


async def with_retries(conn: asyncpg.Connection, attempt: Callable[[], Awaitable[T]],
                       settings: LockSettings) -> T:
    """Run `attempt` (one apply transaction); on `LockBusy`, say who holds the table,
    back off and retry; after the last retry raise a `PlanError` naming them."""
    pause = settings.backoff_s
    for tries in range(settings.retries + 1):
        try:
            return await attempt()
        except LockBusy as busy:
            relation = busy.relation
            who = await holders(conn, relation)
            if tries == settings.retries:
                raise PlanError(
                    f"{busy.what}: could not lock {relation or 'a table'} within "
                    f"{settings.timeout_s:g}s, {tries + 1} time(s); held by {who}",
                    pipeline=busy.pipeline,
                    hint="let that transaction finish (or end it: pg_terminate_backend), or "
                    "raise --lock-timeout / --lock-retries; nothing was changed") from None
            log.warning("waiting for the lock on %s (held by %s): attempt %d of %d failed, "
                        "retrying in %.1fs", relation, who, tries + 1, settings.retries + 1,
                        pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, settings.max_backoff_s)
    raise AssertionError("unreachable")
