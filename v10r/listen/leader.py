"""One active listener per group: a session-level advisory lock on the LISTEN connection.

Run two or more `v10r listen` processes with the same pipelines against one database:
the first to take the lock listens and publishes, the others wait as standbys and try
the lock again every second. The lock belongs to the active listener's own database
session, so it is released exactly when that session ends — the process died, was
killed, or lost its connection (the server notices through TCP keepalives, set short on
this connection). A listener that cannot reach the database cannot hold the lock, and
one that lost its session stops listening before another can take over. The takeover
starts with a catch-up scan, which finds every row changed while nobody listened by its
stale hash.

The key is derived from the sorted pipeline names (advisory locks are per database, so
the database is part of the key already). Listeners with different pipeline sets never
block each other; if two sets share a table, both listen and the duplicates they
publish cost one SELECT each (the content hash makes them no-ops).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Sequence
from typing import Literal

import asyncpg

log = logging.getLogger(__name__)

Lead = Literal["led", "took_over", "stopped"]

POLL_S = 1.0  # how often a standby tries the lock
# Short keepalives on the LISTEN session, so the server ends a partitioned active
# listener's session (and frees its lock) in about 5 + 3 × 2 = 11 s, not hours.
KEEPALIVES = {"tcp_keepalives_idle": "5", "tcp_keepalives_interval": "2",
              "tcp_keepalives_count": "3"}

_TRY = "SELECT pg_catalog.pg_try_advisory_lock($1::pg_catalog.int8)"
# A bigint key shows in pg_locks as classid = high 32 bits, objid = low 32 bits, objsubid 1.
_HOLDER = """
SELECT l.pid FROM pg_catalog.pg_locks AS l
WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory' AND l.granted
  AND l.database OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database AS d
       WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
  AND l.classid::pg_catalog.int8 OPERATOR(pg_catalog.=) $1::pg_catalog.int8
  AND l.objid::pg_catalog.int8 OPERATOR(pg_catalog.=) $2::pg_catalog.int8
  AND l.objsubid OPERATOR(pg_catalog.=) 1
LIMIT 1
"""


def lock_key(pipelines: Sequence[str]) -> int:
    """A signed 64-bit key for this set of pipelines (order and repeats do not matter)."""
    text = "v10r-listen\0" + "\0".join(sorted(set(pipelines)))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


async def try_lead(conn: asyncpg.Connection, key: int) -> int | None:
    """Take the lock on `conn`'s session: None if taken (or already held by this
    session), else the backend pid of the session holding it (0 if not visible)."""
    if await conn.fetchval(_TRY, key):
        return None
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    holder = await conn.fetchval(_HOLDER, unsigned >> 32, unsigned & 0xFFFF_FFFF)
    return int(holder or 0)


async def lead(conn: asyncpg.Connection, key: int, stop: asyncio.Event, *,
               poll_s: float = POLL_S) -> Lead:
    """Wait on `conn` until its session holds the lock, or `stop` is set.

    Database errors propagate: the caller reconnects, and a lost session never leads.
    Both role changes are warnings, so they show without `-v`."""
    holder: int | None = None
    while not stop.is_set():
        current = await try_lead(conn, key)
        if current is None:
            if holder is not None:
                log.warning("active: took over (the active listener's session ended); "
                            "scanning for rows changed meanwhile")
            return "took_over" if holder is not None else "led"
        if current != holder:
            holder = current
            log.warning("standby: another listener is active (pid %s in pg_stat_activity); "
                        "trying again every %g s", current or "not visible to this role",
                        poll_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), poll_s)
    return "stopped"
