"""The one place that turns a spec's `database` section into asyncpg connections.

DSNs are expanded from `${ENV}` here, at the last moment; every error names the
database with its password masked. Connections get pgvector's binary codec, so
vectors travel as binary (about 8x faster than text for batched writes).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import ssl as ssl_module
import time
from typing import Any, Literal
from urllib.parse import parse_qsl

import asyncpg

from v10r.errors import ConnectionFailed, EnvError, PlanError
from v10r.redact import mask_text, mask_url, url_password
from v10r.spec import env
from v10r.spec.model import Database

Role = Literal["read", "write"]

log = logging.getLogger(__name__)


SSL_FILE_PARAMS = ("sslrootcert", "sslcert", "sslkey", "sslcrl")
_KEYWORD = re.compile(r"([A-Za-z_]+)\s*=\s*('(?:[^'\\]|\\.)*'|\S*)")


def dsn_for(database: Database, role: Role = "write", *, pipeline: str | None = None) -> str:
    """The expanded DSN for reads or writes (reads fall back to the write DSN)."""
    raw = database.read_dsn if role == "read" and database.read_dsn else database.dsn
    field = f"database.{'read_dsn' if raw is database.read_dsn else 'dsn'}"
    dsn = env.expand(raw, what=field, pipeline=pipeline)
    if not dsn.strip():  # libpq would read "" as "the local default server"
        raise EnvError(f"`{field}` is empty after expanding {raw!r}", pipeline=pipeline,
                       hint="set the variable it refers to, e.g. "
                       "export DATABASE_URL=postgresql://...")
    return dsn


def _connect_kwargs(database: Database, dsn: str, pipeline: str | None) -> dict[str, Any]:
    _check_ssl_files(database, dsn, pipeline)
    kwargs: dict[str, Any] = {}
    if database.sslmode:
        if database.sslmode in ("verify-ca", "verify-full") and database.sslrootcert:
            kwargs["ssl"] = _ssl_context(database, pipeline)
        else:
            kwargs["ssl"] = database.sslmode
    return kwargs


def _ssl_context(database: Database, pipeline: str | None) -> ssl_module.SSLContext:
    try:
        context = ssl_module.create_default_context(cafile=database.sslrootcert)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise _ssl_file_error(str(database.sslrootcert), "`database.sslrootcert`",
                              f"holds no usable CA certificate ({exc})", pipeline) from None
    context.check_hostname = database.sslmode == "verify-full"
    return context


def _check_ssl_files(database: Database, dsn: str, pipeline: str | None) -> None:
    """A TLS file that is missing or unreadable, named with the setting that points at it
    (asyncpg would only say "No such file or directory")."""
    files = [(database.sslrootcert, "`database.sslrootcert`")] if database.sslrootcert else []
    params = _dsn_params(dsn)
    files += [(params[k], f"`{k}` in the database DSN") for k in SSL_FILE_PARAMS if params.get(k)]
    for path, field in files:
        if path == "system":  # libpq: use the system's trusted CAs
            continue
        if not os.path.isfile(path):
            state = "is a directory" if os.path.isdir(path) else "does not exist"
            raise _ssl_file_error(path, field, state, pipeline)
        if not os.access(path, os.R_OK):
            raise _ssl_file_error(path, field, "is not readable by this user", pipeline)


def _dsn_params(dsn: str) -> dict[str, str]:
    """Connection parameters of a URL's query or of a keyword DSN."""
    if "://" in dsn:
        return dict(parse_qsl(dsn.partition("?")[2]))
    return {m.group(1): m.group(2).strip("'") for m in _KEYWORD.finditer(dsn)}


def _ssl_file_error(path: str, field: str, problem: str, pipeline: str | None) -> ConnectionFailed:
    return ConnectionFailed(f"the TLS file {path!r} set by {field} {problem}", pipeline=pipeline,
                            hint="fix the path (relative paths start from the working "
                            "directory), or remove the setting")


async def _init_connection(conn: asyncpg.Connection) -> None:
    """Register pgvector's binary codecs where the extension exists."""
    has_vector = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector')")
    if has_vector:
        from pgvector.asyncpg import register_vector

        await register_vector(conn)


def _failure(exc: BaseException, dsn: str, pipeline: str | None) -> ConnectionFailed:
    detail = mask_text(str(exc) or type(exc).__name__, (dsn, url_password(dsn)))
    return ConnectionFailed(
        f"cannot connect to {mask_url(dsn)}: {detail}",
        pipeline=pipeline,
        hint="check that the database is running and the DSN (host, port, user, password) "
        "is right",
    )


APPLICATION = {"name": "v10r"}  # set to "v10r <command>" by the CLI


def set_application_name(name: str) -> None:
    """How v10r's sessions show in `pg_stat_activity` (and the server's log)."""
    APPLICATION["name"] = name


def _named(dsn: str, server_settings: dict[str, str] | None) -> dict[str, str]:
    """`server_settings` with v10r's application_name, unless the DSN names its own."""
    settings = dict(server_settings or {})
    if "application_name" not in dsn:
        settings.setdefault("application_name", APPLICATION["name"])
    return settings


async def connect_dsn(dsn: str, *, pipeline: str | None = None, timeout: float = 10.0,
                      vector_codec: bool = True, server_settings: dict[str, str] | None = None,
                      **kwargs: Any) -> asyncpg.Connection:
    try:
        conn = await asyncpg.connect(dsn, timeout=timeout,
                                     server_settings=_named(dsn, server_settings), **kwargs)
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        raise _failure(exc, dsn, pipeline) from None
    if vector_codec:
        await _init_connection(conn)
    return conn


async def connect(database: Database, role: Role = "write", *, pipeline: str | None = None,
                  vector_codec: bool = True,
                  server_settings: dict[str, str] | None = None) -> asyncpg.Connection:
    dsn = dsn_for(database, role, pipeline=pipeline)
    return await connect_dsn(dsn, pipeline=pipeline, vector_codec=vector_codec,
                             server_settings=server_settings,
                             **_connect_kwargs(database, dsn, pipeline))


REPLICA_WAIT_S = 10.0  # how long a scan waits for a lagging replica before reading the primary

_PRIMARY_LSN = "SELECT pg_catalog.pg_current_wal_lsn()"
_REPLAYED = ("SELECT NOT pg_catalog.pg_is_in_recovery() OR pg_catalog.pg_last_wal_replay_lsn() "
             "OPERATOR(pg_catalog.>=) $1::pg_catalog.pg_lsn")


async def connect_caught_up(database: Database, *, pipeline: str | None = None,
                            wait_s: float | None = None) -> asyncpg.Connection:
    """A read connection that sees every commit made on the primary before this call.

    Without `read_dsn` that is the primary. With one, the replica must first replay up
    to the primary's current WAL position; one lagging longer than `wait_s` is passed
    over for the primary (a scan that misses a row would leave it stale until the next
    scan). A `read_dsn` that is not a standby (a read-only role) counts as caught up."""
    if not database.read_dsn:
        return await connect(database, "read", pipeline=pipeline, vector_codec=False)
    wait_s = REPLICA_WAIT_S if wait_s is None else wait_s
    primary = await connect(database, "write", pipeline=pipeline, vector_codec=False)
    try:
        position = await primary.fetchval(_PRIMARY_LSN)
        replica = await connect(database, "read", pipeline=pipeline, vector_codec=False)
    except BaseException:
        primary.terminate()
        raise
    try:
        caught_up = await _replayed(replica, position, wait_s)
    except BaseException:
        primary.terminate()
        raise
    chosen, other = (replica, primary) if caught_up else (primary, replica)
    if chosen is primary:
        log.warning("database %s: the replica has not replayed the primary's position %s "
                    "after %g s; reading the primary instead", database.name, position, wait_s)
    other.terminate()
    return chosen


async def _replayed(replica: asyncpg.Connection, position: object, wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s
    try:
        while not await replica.fetchval(_REPLAYED, position):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.1)
    except BaseException:
        replica.terminate()
        raise
    return True


async def create_pool(database: Database, role: Role = "write", *, pipeline: str | None = None,
                      min_size: int = 1, max_size: int = 4) -> asyncpg.Pool:
    dsn = dsn_for(database, role, pipeline=pipeline)
    try:
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size,
                                         init=_init_connection, reset=_keep_session,
                                         server_settings=_named(dsn, None),
                                         **_connect_kwargs(database, dsn, pipeline))
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        raise _failure(exc, dsn, pipeline) from None
    assert pool is not None
    return pool


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Instead of asyncpg's reset on every release (`RESET ALL; UNLISTEN *; CLOSE ALL`
    and an advisory unlock: one more round trip per batch statement). Pool connections
    only run statements that keep no session state: no LISTEN, session SET, cursor or
    advisory lock. asyncpg still rolls back a transaction left open before this."""


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
