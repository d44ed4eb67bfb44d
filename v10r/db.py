"""The one place that turns a spec's `database` section into asyncpg connections.

DSNs are expanded from `${ENV}` here, at the last moment; every error names the
database with its password masked. Connections get pgvector's binary codec, so
vectors travel as binary (about 8x faster than text for batched writes).
"""

from __future__ import annotations

import ssl as ssl_module
from typing import Any, Literal

import asyncpg

from v10r.errors import ConnectionFailed, PlanError
from v10r.redact import mask_text, mask_url
from v10r.spec import env
from v10r.spec.model import Database

Role = Literal["read", "write"]


def dsn_for(database: Database, role: Role = "write", *, pipeline: str | None = None) -> str:
    """The expanded DSN for reads or writes (reads fall back to the write DSN)."""
    raw = database.read_dsn if role == "read" and database.read_dsn else database.dsn
    return env.expand(raw, what=f"database.{'read_dsn' if raw is database.read_dsn else 'dsn'}",
                      pipeline=pipeline)


def _connect_kwargs(database: Database) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if database.sslmode:
        if database.sslmode in ("verify-ca", "verify-full") and database.sslrootcert:
            context = ssl_module.create_default_context(cafile=database.sslrootcert)
            context.check_hostname = database.sslmode == "verify-full"
            kwargs["ssl"] = context
        else:
            kwargs["ssl"] = database.sslmode
    return kwargs


async def _init_connection(conn: asyncpg.Connection) -> None:
    """Register pgvector's binary codecs where the extension exists."""
    has_vector = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector')")
    if has_vector:
        from pgvector.asyncpg import register_vector

        await register_vector(conn)


def _failure(exc: BaseException, dsn: str, pipeline: str | None) -> ConnectionFailed:
    detail = mask_text(str(exc) or type(exc).__name__, (dsn,))
    return ConnectionFailed(
        f"cannot connect to {mask_url(dsn)}: {detail}",
        pipeline=pipeline,
        hint="check that the database is running and the DSN (host, port, user, password) "
        "is right",
    )


async def connect_dsn(dsn: str, *, pipeline: str | None = None, timeout: float = 10.0,
                      vector_codec: bool = True, **kwargs: Any) -> asyncpg.Connection:
    try:
        conn = await asyncpg.connect(dsn, timeout=timeout, **kwargs)
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        raise _failure(exc, dsn, pipeline) from None
    if vector_codec:
        await _init_connection(conn)
    return conn


async def connect(database: Database, role: Role = "write", *, pipeline: str | None = None,
                  vector_codec: bool = True) -> asyncpg.Connection:
    dsn = dsn_for(database, role, pipeline=pipeline)
    return await connect_dsn(dsn, pipeline=pipeline, vector_codec=vector_codec,
                             **_connect_kwargs(database))


async def create_pool(database: Database, role: Role = "write", *, pipeline: str | None = None,
                      min_size: int = 1, max_size: int = 4) -> asyncpg.Pool:
    dsn = dsn_for(database, role, pipeline=pipeline)
    try:
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size,
                                         init=_init_connection, **_connect_kwargs(database))
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        raise _failure(exc, dsn, pipeline) from None
    assert pool is not None
    return pool


async def require_pgvector(conn: asyncpg.Connection, *, pipeline: str | None = None) -> str:
    """The installed pgvector version, or a `PlanError` saying how to get it."""
    version = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    if version:
        return str(version)
    available = await conn.fetchval(
        "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")
    server = await conn.fetchval("SHOW server_version")
    if available:
        raise PlanError(
            "the pgvector extension is available but not created in this database",
            pipeline=pipeline,
            hint="run `CREATE EXTENSION vector;` as a superuser (or a user with CREATE on "
            "the database)",
        )
    raise PlanError(
        f"pgvector is not installed on this PostgreSQL server (version {server})",
        pipeline=pipeline,
        hint="install it (Debian/Ubuntu: `apt install postgresql-<major>-pgvector`; see "
        "https://github.com/pgvector/pgvector#installation), then `CREATE EXTENSION vector;`",
    )
