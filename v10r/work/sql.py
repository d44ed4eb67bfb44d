"""The two statements of the processing core, built once per pipeline.

Keys travel as `text[]` and are cast to the key columns' own types in SQL, so any key
type (integer, uuid, text, numeric...) binds the same way and the cast happens where
PostgreSQL can use the primary-key index. Rows are matched back to tasks by ordinal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from v10r.compile.content_hash import source_hash_sql
from v10r.compile.filter import filter_sql
from v10r.compile.names import PipelineNames
from v10r.errors import PlanError
from v10r.spec.identifiers import quote_ident
from v10r.spec.model import Pipeline

ALIAS = "t"

_KEY_TYPES_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a
WHERE a.attrelid = to_regclass($1) AND a.attname = ANY($2::text[]) AND NOT a.attisdropped
"""


@dataclass(frozen=True, slots=True)
class KeyColumn:
    name: str
    type: str  # as `format_type` spells it, already quoted where needed


@dataclass(frozen=True, slots=True)
class Statements:
    keys: tuple[KeyColumn, ...]
    fetch: str
    write: str


async def key_columns(conn: asyncpg.Connection, pipeline: Pipeline,
                      names: PipelineNames) -> tuple[KeyColumn, ...]:
    """The key columns with their SQL types, read from the catalog."""
    rows = await conn.fetch(_KEY_TYPES_SQL, names.qualified_table, list(names.key))
    found = {row[0]: row[1] for row in rows}
    missing = [k for k in names.key if k not in found]
    if missing:
        raise PlanError(
            f"table {names.display_table} or its key column(s) {', '.join(missing)} "
            "do not exist",
            pipeline=pipeline.name,
            hint="check `source.table` and `source.key`, then run `v10r apply`",
        )
    return tuple(KeyColumn(k, found[k]) for k in names.key)


def statements(pipeline: Pipeline, names: PipelineNames,
               keys: Sequence[KeyColumn]) -> Statements:
    return Statements(tuple(keys), fetch_sql(pipeline, names, keys), write_sql(pipeline, names, keys))


def _key_join(keys: Sequence[KeyColumn]) -> str:
    return " AND ".join(f"{ALIAS}.{quote_ident(k.name)} = u.k{i}::{k.type}"
                        for i, k in enumerate(keys))


def fetch_sql(pipeline: Pipeline, names: PipelineNames, keys: Sequence[KeyColumn]) -> str:
    """$1..$n: key values as text[] (one array per key column). Returns, per matching
    row: the ordinal of its key, the source columns as text, the stored hash and model."""
    params = ", ".join(f"${i + 1}::text[]" for i in range(len(keys)))
    aliases = ", ".join(f"k{i}" for i in range(len(keys)))
    columns = ", ".join(f"{ALIAS}.{quote_ident(c)}::text" for c in names.columns)
    return (
        f"SELECT u.i, {columns}, {ALIAS}.{quote_ident(names.hash)}::text, "
        f"{ALIAS}.{quote_ident(names.model)}::text "
        f"FROM unnest({params}) WITH ORDINALITY AS u({aliases}, i) "
        f"JOIN {names.qualified_table} AS {ALIAS} ON {_key_join(keys)} "
        f"WHERE {filter_sql(pipeline.source.filter, ALIAS)}"
    )


def write_sql(pipeline: Pipeline, names: PipelineNames, keys: Sequence[KeyColumn]) -> str:
    """The guarded write. Parameters: key arrays, then vectors, stored hashes, source
    hashes, notes, ordinals, and the model name. A row is written only if its current
    source columns still hash to the source hash its vector was computed from."""
    n = len(keys)
    vector_type = pipeline.target.type
    params = [f"${i + 1}::text[]" for i in range(n)] + [
        f"${n + 1}::{vector_type}[]", f"${n + 2}::text[]", f"${n + 3}::text[]",
        f"${n + 4}::text[]", f"${n + 5}::int[]"]
    aliases = [f"k{i}" for i in range(n)] + ["v", "stored", "source", "note", "i"]
    q = quote_ident
    return (
        f"UPDATE {names.qualified_table} AS {ALIAS} SET "
        f"{q(names.embedding)} = u.v, {q(names.model)} = ${n + 6}::text, "
        f"{q(names.hash)} = u.stored, {q(names.at)} = now(), {q(names.note)} = u.note "
        f"FROM unnest({', '.join(params)}) AS u({', '.join(aliases)}) "
        f"WHERE {_key_join(keys)} "
        f"AND {source_hash_sql(names.columns, ALIAS)} = u.source "
        "RETURNING u.i"
    )
