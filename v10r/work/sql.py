"""The two statements of the processing core, built once per pipeline.

Keys travel as `text[]` (exact, whatever their type) and are cast to the key columns'
own types in SQL, so any key type (integer, uuid, text, numeric...) binds the same way
and the cast happens where PostgreSQL can use the primary-key index. Rows are matched
back to tasks by ordinal. Every function, type and operator of built-in types is
schema-qualified, so no object another role creates can stand in for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from v10r.compile.content_hash import source_hash_sql
from v10r.compile.filter import filter_sql, op
from v10r.compile.names import PipelineNames
from v10r.keys import ColumnType
from v10r.spec.identifiers import quote_ident
from v10r.spec.model import Pipeline

ALIAS = "t"
EQ = op("=")
TEXT = "pg_catalog.text"


@dataclass(frozen=True, slots=True)
class Statements:
    keys: tuple[ColumnType, ...]
    fetch: str
    write: str


def statements(pipeline: Pipeline, names: PipelineNames, keys: Sequence[ColumnType],
               vector: ColumnType) -> Statements:
    """`keys` and `vector` (the embedding column) with their types from the catalog."""
    return Statements(tuple(keys), fetch_sql(pipeline, names, keys),
                      write_sql(pipeline, names, keys, vector))


def _key_join(keys: Sequence[ColumnType]) -> str:
    return " AND ".join(f"{ALIAS}.{quote_ident(k.name)} {k.equals} u.k{i}::{k.cast}"
                        for i, k in enumerate(keys))


def _rows_from(arrays: Sequence[str]) -> str:
    """Arrays side by side as rows: what `unnest(a, b)` in FROM means, spelled out, since
    only the one-argument `unnest` is a function that can be schema-qualified."""
    return f"ROWS FROM ({', '.join(f'pg_catalog.unnest({a})' for a in arrays)})"


def check_key_sql(key: ColumnType) -> str:
    """Whether one key text casts to its column's type (run only to find a bad key)."""
    return f"SELECT $1::{TEXT}::{key.cast}"


def fetch_sql(pipeline: Pipeline, names: PipelineNames, keys: Sequence[ColumnType]) -> str:
    """$1..$n: key values as text[] (one array per key column). Returns, per matching
    row: the ordinal of its key, the source columns as text, the stored hash and model."""
    params = [f"${i + 1}::{TEXT}[]" for i in range(len(keys))]
    aliases = ", ".join(f"k{i}" for i in range(len(keys)))
    columns = ", ".join(f"{ALIAS}.{quote_ident(c)}::{TEXT}" for c in names.columns)
    return (
        f"SELECT u.i, {columns}, {ALIAS}.{quote_ident(names.hash)}::{TEXT}, "
        f"{ALIAS}.{quote_ident(names.model)}::{TEXT} "
        f"FROM {_rows_from(params)} WITH ORDINALITY AS u({aliases}, i) "
        f"JOIN {names.qualified_table} AS {ALIAS} ON {_key_join(keys)} "
        f"WHERE {filter_sql(pipeline.source.filter, ALIAS)}"
    )


def write_sql(pipeline: Pipeline, names: PipelineNames, keys: Sequence[ColumnType],
              vector: ColumnType) -> str:
    """The guarded write. Parameters: key arrays, then vectors, stored hashes, source
    hashes, notes, ordinals, and the model name. A row is written only if its current
    source columns still hash to the source hash its vector was computed from."""
    n = len(keys)
    params = [f"${i + 1}::{TEXT}[]" for i in range(n)] + [
        f"${n + 1}::{vector.cast}[]", f"${n + 2}::{TEXT}[]", f"${n + 3}::{TEXT}[]",
        f"${n + 4}::{TEXT}[]", f"${n + 5}::pg_catalog.int4[]"]
    aliases = [f"k{i}" for i in range(n)] + ["v", "stored", "source", "note", "i"]
    q = quote_ident
    return (
        f"UPDATE {names.qualified_table} AS {ALIAS} SET "
        f"{q(names.embedding)} = u.v, {q(names.model)} = ${n + 6}::{TEXT}, "
        f"{q(names.hash)} = u.stored, {q(names.at)} = pg_catalog.now(), {q(names.note)} = u.note "
        f"FROM {_rows_from(params)} AS u({', '.join(aliases)}) "
        f"WHERE {_key_join(keys)} "
        # `IS TRUE`: the guard is a filter on the rows the keys found, never a join
        # key (as one, a hash join would hash the text of every row in the table)
        f"AND ({source_hash_sql(names.columns, ALIAS)} {EQ} u.source) IS TRUE "
        "RETURNING u.i"
    )
