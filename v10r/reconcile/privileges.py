"""The GRANTs each component's role needs, checked where it starts: a missing one is a
clear error naming the role, the object and the GRANT to run, never a traceback or a
task that fails row by row (see docs/security.md)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import asyncpg

from v10r.compile.names import BOOKKEEPING_TABLE, V10R_SCHEMA, PipelineNames
from v10r.errors import PlanError
from v10r.spec.identifiers import quote_ident

BOOKKEEPING = f"{V10R_SCHEMA}.{BOOKKEEPING_TABLE}"

_COLUMN_PRIVILEGES = """
SELECT a.attname,
       pg_catalog.has_column_privilege(a.attrelid, a.attnum, 'SELECT') AS can_select,
       pg_catalog.has_column_privilege(a.attrelid, a.attnum, 'UPDATE') AS can_update
FROM pg_catalog.pg_attribute a
WHERE a.attrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1)
  AND a.attname OPERATOR(pg_catalog.=) ANY ($2::pg_catalog.name[]) AND NOT a.attisdropped
"""


def role_sql(role: str) -> str:
    """A role name as a GRANT statement needs it: bare when it can be, else quoted."""
    return role if re.fullmatch(r"[a-z_][a-z0-9_$]*", role) else quote_ident(role)


async def current_role(conn: asyncpg.Connection) -> str:
    return str(await conn.fetchval("SELECT current_user"))


async def bookkeeping_denied(conn: asyncpg.Connection, exc: BaseException) -> PlanError:
    """The error for a role that may not read `v10r.pipelines` (plan, status, listen and
    workers all read it to learn what is applied)."""
    role = await current_role(conn)
    grant = (f"GRANT USAGE ON SCHEMA {V10R_SCHEMA} TO {role_sql(role)}; "
             f"GRANT SELECT ON {BOOKKEEPING} TO {role_sql(role)};")
    return PlanError(f"role {role!r} may not read {BOOKKEEPING} ({exc})", obj=BOOKKEEPING,
                     hint=f"as the role that runs `v10r apply`: {grant}")


async def require_columns(conn: asyncpg.Connection, names: PipelineNames, *,
                          read: Sequence[str], write: Sequence[str] = (),
                          pipeline: str | None = None) -> None:
    """Raise `PlanError` unless the connection's role may SELECT `read` and UPDATE
    `write` on the pipeline's table (columns that do not exist yet are skipped: `v10r
    apply` creates them, and the owner's default privileges decide their grants)."""
    rows = await conn.fetch(_COLUMN_PRIVILEGES, names.qualified_table, [*read, *write])
    allowed = {r["attname"]: (r["can_select"], r["can_update"]) for r in rows}
    no_select = [c for c in read if c in allowed and not allowed[c][0]]
    no_update = [c for c in write if c in allowed and not allowed[c][1]]
    if not (no_select or no_update):
        return
    role = await current_role(conn)
    missing = [f"SELECT ({', '.join(no_select)})"] if no_select else []
    missing += [f"UPDATE ({', '.join(no_update)})"] if no_update else []
    grants = "; ".join(f"GRANT {m} ON {names.qualified_table} TO {role_sql(role)}"
                       for m in missing)
    raise PlanError(f"role {role!r} lacks {' and '.join(missing)} on {names.display_table}",
                    pipeline=pipeline, obj=names.display_table,
                    hint=f"as the table's owner: {grants};")


async def require_writer(conn: asyncpg.Connection, names: PipelineNames, *,
                         pipeline: str | None = None) -> None:
    """What a worker's write DSN needs for the guarded write: read the key and the text
    (the WHERE clause hashes it), write the vector and its metadata columns."""
    await require_columns(conn, names, read=list(dict.fromkeys([*names.key, *names.columns])),
                          write=[names.embedding, *names.metadata_columns], pipeline=pipeline)


async def require_reader(conn: asyncpg.Connection, names: PipelineNames,
                         filter_columns: Sequence[str] = (), *,
                         pipeline: str | None = None) -> None:
    """What a worker's or listener's read DSN needs: the key, text, filter columns and
    the stored hash and model."""
    read = [*names.key, *names.columns, *filter_columns, names.hash, names.model]
    await require_columns(conn, names, read=list(dict.fromkeys(read)), pipeline=pipeline)
