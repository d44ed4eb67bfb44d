"""The live state of one database, read once from pg_catalog into one frozen value.

The planner only ever looks at this value, so it can be unit-tested with hand-built
states; every version or capability check reads it instead of querying again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import asyncpg

from v10r.compile.names import BOOKKEEPING_TABLE, NOTIFY_FUNCTION, V10R_SCHEMA
from v10r.reconcile import privileges

TableRef = tuple[str, str]  # (schema, table), unquoted


@dataclass(frozen=True, slots=True)
class LiveColumn:
    name: str
    type: str  # format_type()
    base_type: str  # pg_type.typname, e.g. text, varchar, vector
    nullable: bool = False  # no NOT NULL constraint
    comment: str | None = None  # v10r's ownership marker lives here (compile.names.marker)


@dataclass(frozen=True, slots=True)
class LiveIndex:
    name: str
    columns: tuple[str, ...]
    unique: bool
    valid: bool
    partial: bool
    method: str
    opclasses: tuple[str, ...]
    options: tuple[str, ...]  # reloptions, e.g. ("m=16", "ef_construction=64")
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class LiveTrigger:
    name: str
    function: str  # "schema.name"
    args: tuple[str, ...]

    @property
    def is_v10r(self) -> bool:
        return self.function == f"{V10R_SCHEMA}.{NOTIFY_FUNCTION}"

    @property
    def marker(self) -> str | None:
        return self.args[-1] if self.is_v10r and self.args else None


@dataclass(frozen=True, slots=True)
class LiveTable:
    schema: str
    table: str
    kind: str  # pg_class.relkind: r, p, v, m, f
    owned: bool  # current user may ALTER it
    columns: dict[str, LiveColumn] = field(default_factory=dict)
    indexes: dict[str, LiveIndex] = field(default_factory=dict)
    triggers: dict[str, LiveTrigger] = field(default_factory=dict)
    rows_estimate: int = 0

    def unique_keys(self) -> list[tuple[str, ...]]:
        return [i.columns for i in self.indexes.values()
                if i.unique and i.valid and not i.partial]


@dataclass(frozen=True, slots=True)
class Recorded:
    """One row of v10r.pipelines."""

    name: str
    database_name: str
    schema: str
    table: str
    embedding_column: str
    columns: tuple[str, ...]
    index_name: str | None
    triggers: tuple[str, ...]
    definition_hash: str
    fingerprint: str
    dimensions: int
    model: str
    spec_source: str | None = None  # the spec file it was applied from (prune scope)
    next_column: str | None = None  # blue/green: the vector column being filled
    next_fingerprint: str | None = None
    retired: tuple[str, ...] = ()  # old vector columns kept after a cutover


@dataclass(frozen=True, slots=True)
class LiveState:
    server_version: int  # server_version_num, e.g. 180006
    pgvector_version: str | None
    database: str
    can_create_schema: bool
    schema_exists: bool
    bookkeeping_exists: bool
    function_source: str | None  # prosrc of v10r.v10r_notify(), None when missing
    tables: dict[TableRef, LiveTable] = field(default_factory=dict)
    recorded: dict[str, Recorded] = field(default_factory=dict)
    # Every relation name in the schemas of interest: index names share that namespace.
    relations: frozenset[TableRef] = frozenset()
    bookkeeping_columns: frozenset[str] = frozenset()  # an older v10r created fewer
    backfill_exists: bool = True  # v10r.backfill (bookmarks); an older v10r had none

    def table(self, schema: str, table: str) -> LiveTable | None:
        return self.tables.get((schema, table))


_SERVER = """
SELECT current_setting('server_version_num')::int AS version,
       (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS pgvector,
       current_database() AS database,
       has_database_privilege(current_database(), 'CREATE') AS can_create,
       to_regnamespace($1::text) IS NOT NULL AS schema_exists,
       EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = $1::text AND c.relname = $2::text) AS bookkeeping_exists,
       EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = $1::text AND c.relname = 'backfill') AS backfill_exists,
       (SELECT p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = $1::text AND p.proname = $3::text AND p.pronargs = 0) AS function_source
"""

_TABLES = """
SELECT c.oid, n.nspname, c.relname, c.relkind::text AS kind,
       pg_has_role(c.relowner, 'USAGE') AS owned, greatest(c.reltuples, 0)::bigint AS rows
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) AS w(s, t)
  ON w.s = n.nspname AND w.t = c.relname
"""

_COLUMNS = """
SELECT a.attrelid AS oid, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
       coalesce(bt.typname, t.typname) AS base_type,
       NOT (a.attnotnull OR t.typnotnull) AS nullable,
       pg_catalog.col_description(a.attrelid, a.attnum) AS comment
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""

_INDEXES = """
SELECT i.indrelid AS oid, ic.relname AS name, i.indisunique AS unique, i.indisvalid AS valid,
       (i.indpred IS NOT NULL OR i.indexprs IS NOT NULL) AS partial, am.amname AS method,
       array(SELECT a.attname FROM pg_catalog.unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             ORDER BY k.ord) AS columns,
       array(SELECT oc.opcname FROM pg_catalog.unnest(i.indclass) WITH ORDINALITY k(oid, ord)
             JOIN pg_opclass oc ON oc.oid = k.oid ORDER BY k.ord) AS opclasses,
       coalesce(ic.reloptions, '{}') AS options,
       pg_catalog.obj_description(ic.oid, 'pg_class') AS comment
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
WHERE i.indrelid = ANY($1::oid[])
"""

_TRIGGERS = """
SELECT t.tgrelid AS oid, t.tgname AS name, n.nspname || '.' || p.proname AS function,
       t.tgargs AS args, t.tgnargs AS nargs
FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE t.tgrelid = ANY($1::oid[]) AND NOT t.tgisinternal
"""

_RELATIONS = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY($1::text[])
"""

_BOOKKEEPING_COLUMNS = """
SELECT attname FROM pg_catalog.pg_attribute
WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped
"""

# As JSON, so a bookkeeping table created by an older v10r (fewer columns) still reads.
_RECORDED = "SELECT p.name, pg_catalog.to_jsonb(p) AS row FROM {table} p"


async def introspect(conn: asyncpg.Connection, tables: Iterable[TableRef]) -> LiveState:
    """Read everything the planner needs about `tables` and v10r's own objects."""
    server = await conn.fetchrow(_SERVER, V10R_SCHEMA, BOOKKEEPING_TABLE, NOTIFY_FUNCTION)
    recorded: dict[str, Recorded] = {}
    columns: frozenset[str] = frozenset()
    if server["bookkeeping_exists"]:
        from v10r.compile.names import bookkeeping_table

        try:
            rows = await conn.fetch(_RECORDED.format(table=bookkeeping_table()))
        except asyncpg.InsufficientPrivilegeError as exc:
            raise await privileges.bookkeeping_denied(conn, exc) from None
        recorded = {row["name"]: _recorded(row) for row in rows}
        columns = frozenset(r[0] for r in await conn.fetch(
            _BOOKKEEPING_COLUMNS, bookkeeping_table()))
    wanted = set(tables) | {(r.schema, r.table) for r in recorded.values()}
    return LiveState(
        server_version=server["version"], pgvector_version=server["pgvector"],
        database=server["database"], can_create_schema=server["can_create"],
        schema_exists=server["schema_exists"], bookkeeping_exists=server["bookkeeping_exists"],
        backfill_exists=server["backfill_exists"],
        function_source=server["function_source"], tables=await _tables(conn, wanted),
        recorded=recorded, relations=frozenset(
            (r[0], r[1]) for r in await conn.fetch(_RELATIONS, sorted({s for s, _ in wanted}))),
        bookkeeping_columns=columns)


def _recorded(record: asyncpg.Record) -> Recorded:
    raw = record["row"]
    row = json.loads(raw) if isinstance(raw, str) else raw
    return Recorded(row["name"], row["database_name"], row["schema_name"], row["table_name"],
                    row["embedding_column"], tuple(row["columns"]), row["index_name"],
                    tuple(row["triggers"]), row["definition_hash"], row["fingerprint"],
                    row["dimensions"], row["model"], row.get("spec_source"),
                    row.get("next_column"), row.get("next_fingerprint"),
                    tuple(row.get("retired") or ()))


async def _tables(conn: asyncpg.Connection, wanted: set[TableRef]) -> dict[TableRef, LiveTable]:
    if not wanted:
        return {}
    refs = sorted(wanted)
    rows = await conn.fetch(_TABLES, [s for s, _ in refs], [t for _, t in refs])
    by_oid = {r["oid"]: LiveTable(r["nspname"], r["relname"], r["kind"], r["owned"],
                                  rows_estimate=r["rows"]) for r in rows}
    oids = list(by_oid)
    for r in await conn.fetch(_COLUMNS, oids):
        by_oid[r["oid"]].columns[r["attname"]] = LiveColumn(r["attname"], r["type"],
                                                            r["base_type"], r["nullable"],
                                                            comment=r["comment"])
    for r in await conn.fetch(_INDEXES, oids):
        by_oid[r["oid"]].indexes[r["name"]] = LiveIndex(
            r["name"], tuple(r["columns"]), r["unique"], r["valid"], r["partial"], r["method"],
            tuple(r["opclasses"]), tuple(r["options"]), comment=r["comment"])
    for r in await conn.fetch(_TRIGGERS, oids):
        args = tuple(bytes(r["args"]).decode("utf-8").split("\x00")[: r["nargs"]])
        by_oid[r["oid"]].triggers[r["name"]] = LiveTrigger(r["name"], r["function"], args)
    return {(t.schema, t.table): t for t in by_oid.values()}
