"""Pipeline → the database objects it needs, as SQL. Pure: no connection, no live state.

The reconciler compares these desired objects with the live catalog; the same SQL is
shown by `v10r plan` and run by `v10r apply`. Every identifier goes through
`quote_ident`, every value through `quote_literal`. The trigger function and its
arguments run inside users' writes, possibly a superuser's: the function pins
`search_path`, and every call, operator and cast is schema-qualified, so no object
another role creates in a schema is ever called (CVE-2018-1058).

Triggers. One shared function, `v10r.v10r_notify()`, is configured per trigger through
its arguments (`TG_ARGV`): the channel, the `schema.table` label, SQL for the row key and
SQL for "did a watched column change and does the filter match". Per table:

* per-row mode (`bulk_threshold: null`): one row-level trigger
  `AFTER INSERT OR UPDATE OF <watched columns>`; the worker's own UPDATE of the vector
  and metadata columns is not in that list, so it never fires.
* bulk mode: two statement-level triggers with transition tables (one per event, as
  PostgreSQL requires); each lists the changed rows once and sends one notification per
  row, or a single `{"scan": true}` when more than the threshold changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace

from v10r.compile import content_hash
from v10r.compile.filter import filter_sql, op
from v10r.compile.names import (
    V10R_SCHEMA,
    PipelineNames,
    bookkeeping_table,
    notify_function,
    pipeline_names,
)
from v10r.spec.identifiers import quote_ident, quote_literal
from v10r.spec.model import HnswIndex, Pipeline

DDL_VERSION = 2
TEXT_TYPES = frozenset({"text", "varchar", "bpchar", "citext", "name"})
METADATA_TYPES = ("text", "text", "timestamp with time zone", "text")  # model, hash, at, note
NEW_TABLE = "v10r_new"
OLD_TABLE = "v10r_old"
# Fixed key of v10r's advisory lock ('v10r' in ASCII), shared by every apply.
ADVISORY_LOCK_KEY = 0x7631_3072


@dataclass(frozen=True, slots=True)
class ColumnDef:
    name: str
    type: str  # as `format_type()` prints it, so it compares with the live catalog


@dataclass(frozen=True, slots=True)
class IndexDef:
    name: str
    column: str
    opclass: str
    options: tuple[tuple[str, int], ...]  # (m, ef_construction)

    def create_sql(self, qualified_table: str) -> str:
        opts = ", ".join(f"{k} = {v}" for k, v in self.options)
        return (f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {quote_ident(self.name)} "
                f"ON {qualified_table} USING hnsw ({quote_ident(self.column)} {self.opclass}) "
                f"WITH ({opts})")


@dataclass(frozen=True, slots=True)
class CompiledPipeline:
    """What one pipeline wants on its table, under its resolved names."""

    pipeline: Pipeline
    names: PipelineNames
    columns: tuple[ColumnDef, ...]  # embedding first, then model, hash, at, note
    index: IndexDef | None
    fingerprint: str
    definition_hash: str

    @property
    def name(self) -> str:
        return self.pipeline.name


@dataclass(frozen=True, slots=True)
class TriggerDef:
    name: str
    sql: str  # CREATE TRIGGER …
    marker: str  # last trigger argument: identifies this exact definition


def vector_type(pipeline: Pipeline) -> str:
    return f"{pipeline.target.type}({pipeline.dimensions})"


def index_def(pipeline: Pipeline, names: PipelineNames) -> IndexDef | None:
    index = pipeline.target.index
    if not isinstance(index, HnswIndex):
        return None
    opclass = f"{pipeline.target.type}_{index.metric}_ops"
    return IndexDef(names.index, names.embedding, opclass,
                    (("m", index.m), ("ef_construction", index.ef_construction)))


def compile_pipeline(pipeline: Pipeline, embedding_column: str | None = None,
                     trigger_names: tuple[str, str] | None = None) -> CompiledPipeline:
    """The desired objects; pass the resolved names when a collision renamed them."""
    names = pipeline_names(pipeline, embedding_column=embedding_column)
    if trigger_names:
        names = replace(names, trigger=trigger_names[0], bulk_trigger=trigger_names[1])
    columns = (ColumnDef(names.embedding, vector_type(pipeline)),) + tuple(
        ColumnDef(n, t) for n, t in zip(names.metadata_columns, METADATA_TYPES, strict=True))
    index = index_def(pipeline, names)
    return CompiledPipeline(pipeline, names, columns, index, content_hash.fingerprint(pipeline),
                            _definition_hash(pipeline, columns, index))


def _definition_hash(pipeline: Pipeline, columns: Sequence[ColumnDef],
                     index: IndexDef | None) -> str:
    """Hash of this pipeline's own objects (not of the shared trigger), so adding a second
    pipeline to a table does not make the first look drifted."""
    payload = {
        "v": DDL_VERSION,
        "columns": [[c.name, c.type] for c in columns],
        "index": None if index is None else [index.name, index.column, index.opclass,
                                             list(index.options)],
        "key": list(pipeline.source.key),
        "watch": list(pipeline.source.columns),
        "filter": filter_sql(pipeline.source.filter, row="n"),
        "bulk_threshold": pipeline.trigger.bulk_threshold,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# --- schema v10r ------------------------------------------------------------------------

def create_schema_sql() -> str:
    return f"CREATE SCHEMA IF NOT EXISTS {quote_ident(V10R_SCHEMA)}"


def bookkeeping_sql() -> str:
    return f"""CREATE TABLE IF NOT EXISTS {bookkeeping_table()} (
    name text PRIMARY KEY,
    database_name text NOT NULL,
    schema_name text NOT NULL,
    table_name text NOT NULL,
    embedding_column text NOT NULL,
    columns text[] NOT NULL,
    index_name text,
    triggers text[] NOT NULL,
    definition_hash text NOT NULL,
    fingerprint text NOT NULL,
    dimensions integer NOT NULL,
    model text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    spec_source text,
    next_column text,
    next_fingerprint text,
    retired text[] NOT NULL DEFAULT '{{}}'
)"""


def backfill_sql() -> str:
    """Where each pipeline's `v10r backfill` got to, so a crashed run resumes there."""
    return f"""CREATE TABLE IF NOT EXISTS {quote_ident(V10R_SCHEMA)}."backfill" (
    pipeline text PRIMARY KEY,
    fingerprint text NOT NULL,
    after_key jsonb,
    published bigint NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    finished_at timestamptz
)"""


# Columns added to the bookkeeping table after its first version, with their SQL type.
BOOKKEEPING_UPGRADES = (("spec_source", "text"), ("next_column", "text"),
                        ("next_fingerprint", "text"), ("retired", "text[] NOT NULL DEFAULT '{}'"))


def upgrade_bookkeeping_sql(missing: Sequence[str]) -> str:
    adds = ", ".join(f"ADD COLUMN IF NOT EXISTS {quote_ident(name)} {sql_type}"
                     for name, sql_type in BOOKKEEPING_UPGRADES if name in missing)
    return f"ALTER TABLE {bookkeeping_table()} {adds}"


NOTIFY_BODY = """
-- v10r notify function, version 3. Arguments: see v10r/compile/ddl.py.
-- Runs inside users' writes: every call and operator is schema-qualified, and the
-- function pins search_path, so nothing a user creates in a schema is ever called.
DECLARE
  key jsonb;
  keys jsonb[];
  found_rows bigint;
  threshold bigint;
  payload text;
  is_insert boolean := TG_OP OPERATOR(pg_catalog.=) 'INSERT';
BEGIN
  IF TG_LEVEL OPERATOR(pg_catalog.=) 'ROW' THEN
    -- TG_ARGV: channel, table label, key SQL, insert condition, update condition
    EXECUTE pg_catalog.format('SELECT %s WHERE %s', TG_ARGV[2],
                              CASE WHEN is_insert THEN TG_ARGV[3] ELSE TG_ARGV[4] END)
      INTO key USING CASE WHEN is_insert THEN NEW ELSE OLD END, NEW;
    GET DIAGNOSTICS found_rows := ROW_COUNT;
    IF found_rows OPERATOR(pg_catalog.>) 0 AND key IS NOT NULL THEN
      payload := pg_catalog.jsonb_build_object('id', key, 'table', TG_ARGV[1])::pg_catalog.text;
      -- NOTIFY refuses 8000 bytes or more, which would fail the user's write: a key too
      -- long to carry asks for a scan instead (the catch-up scan finds the row).
      IF pg_catalog.octet_length(payload) OPERATOR(pg_catalog.>=) 8000 THEN
        payload := pg_catalog.jsonb_build_object('scan', true, 'table', TG_ARGV[1])::pg_catalog.text;
      END IF;
      PERFORM pg_catalog.pg_notify(TG_ARGV[0], payload);
    END IF;
    RETURN NULL;
  END IF;
  -- TG_ARGV: channel, table label, key SQL, FROM clause, condition, threshold ('' = none)
  IF TG_ARGV[5] OPERATOR(pg_catalog.<>) '' THEN
    threshold := TG_ARGV[5]::pg_catalog.int8;
  END IF;
  EXECUTE pg_catalog.format(
      'SELECT pg_catalog.array_agg(k) FROM (SELECT %s AS k FROM %s WHERE %s LIMIT %s) s',
      TG_ARGV[2], TG_ARGV[3], TG_ARGV[4],
      coalesce((threshold OPERATOR(pg_catalog.+) 1)::pg_catalog.text, 'ALL'))
    INTO keys;
  IF keys IS NULL THEN
    RETURN NULL;
  END IF;
  IF threshold IS NOT NULL AND pg_catalog.cardinality(keys) OPERATOR(pg_catalog.>) threshold THEN
    PERFORM pg_catalog.pg_notify(TG_ARGV[0], pg_catalog.jsonb_build_object(
      'scan', true, 'table', TG_ARGV[1])::pg_catalog.text);
  ELSE
    PERFORM pg_catalog.pg_notify(TG_ARGV[0], CASE
        WHEN pg_catalog.octet_length(p) OPERATOR(pg_catalog.<) 8000 THEN p
        ELSE pg_catalog.jsonb_build_object('scan', true, 'table', TG_ARGV[1])::pg_catalog.text
      END)
      FROM (SELECT pg_catalog.jsonb_build_object('id', k, 'table', TG_ARGV[1])::pg_catalog.text
              AS p FROM pg_catalog.unnest(keys) AS k WHERE k IS NOT NULL) AS s;
  END IF;
  RETURN NULL;
END
"""
# Pinned on every function v10r creates (see CVE-2018-1058).
SEARCH_PATH = "pg_catalog, pg_temp"


def notify_function_sql() -> str:
    return (f"CREATE OR REPLACE FUNCTION {notify_function()}() RETURNS trigger "
            f"LANGUAGE plpgsql SET search_path = {SEARCH_PATH} AS $v10r${NOTIFY_BODY}$v10r$")


# --- triggers --------------------------------------------------------------------------

def key_sql(key: Sequence[str], row: str) -> str:
    """The row key as jsonb: a scalar for one column, an object for a composite key."""
    if len(key) == 1:
        return f"pg_catalog.to_jsonb({row}.{quote_ident(key[0])})"
    pairs = ", ".join(f"{quote_literal(k)}::pg_catalog.text, {row}.{quote_ident(k)}"
                      for k in key)
    return f"pg_catalog.jsonb_build_object({pairs})"


def text_distinct(a: str, b: str) -> str:
    """`a IS DISTINCT FROM b` over the values' text, with a qualified operator (the
    plain form looks `=` up in the search path)."""
    ta, tb = f"{a}::pg_catalog.text", f"{b}::pg_catalog.text"
    return (f"coalesce({ta} {op('<>')} {tb}, "
            f"({a} IS NULL) {op('<>')} ({b} IS NULL))")


def _changed(columns: Sequence[str], old: str, new: str) -> str:
    return " OR ".join(text_distinct(f"{old}.{quote_ident(c)}", f"{new}.{quote_ident(c)}")
                       for c in columns)


def update_condition(pipelines: Sequence[Pipeline], old: str, new: str) -> str:
    """A row is news when a pipeline's filter matches and its text changed, or the row
    just entered the filter."""
    parts = []
    for p in pipelines:
        f_new, f_old = filter_sql(p.source.filter, new), filter_sql(p.source.filter, old)
        entered = "" if f_old == "true" else f" OR NOT coalesce({f_old}, false)"
        parts.append(f"(({f_new}) AND ({_changed(p.source.columns, old, new)}{entered}))")
    return " OR ".join(parts)


def insert_condition(pipelines: Sequence[Pipeline], new: str) -> str:
    return " OR ".join(f"({filter_sql(p.source.filter, new)})" for p in pipelines)


def watched_columns(pipelines: Sequence[Pipeline]) -> tuple[str, ...]:
    """Text and filter columns of every pipeline on the table, in first-seen order."""
    seen: dict[str, None] = {}
    for p in pipelines:
        for c in [*p.source.columns, *(cond.column for cond in p.source.filter)]:
            seen.setdefault(c, None)
    return tuple(seen)


def bulk_threshold(pipelines: Sequence[Pipeline]) -> int | None:
    """The smallest threshold of the table's pipelines; None when all are per-row."""
    thresholds = [p.trigger.bulk_threshold for p in pipelines if p.trigger.bulk_threshold]
    return min(thresholds) if thresholds else None


def table_triggers(compiled: Sequence[CompiledPipeline]) -> tuple[TriggerDef, ...]:
    """The trigger(s) of one table, covering every pipeline that watches it."""
    pipelines = [c.pipeline for c in compiled]
    names = compiled[0].names
    threshold = bulk_threshold(pipelines)
    if threshold is None:
        return (_row_trigger(pipelines, names),)
    return _statement_triggers(pipelines, names, threshold)


def _marker(*parts: str) -> str:
    digest = hashlib.sha256("\x1f".join((str(DDL_VERSION), *parts)).encode()).hexdigest()
    return f"v10r:{digest[:16]}"


def _create_trigger(name: str, names: PipelineNames, event: str, level: str,
                    args: Sequence[str]) -> str:
    arglist = ", ".join(quote_literal(a) for a in args)
    return (f"CREATE TRIGGER {quote_ident(name)} {event} ON {names.qualified_table} {level} "
            f"EXECUTE FUNCTION {notify_function()}({arglist})")


def _row_trigger(pipelines: Sequence[Pipeline], names: PipelineNames) -> TriggerDef:
    args = [names.channel, names.display_table, key_sql(names.key, "($2)"),
            insert_condition(pipelines, "($2)"), update_condition(pipelines, "($1)", "($2)")]
    marker = _marker("row", *args)
    watched = ", ".join(quote_ident(c) for c in watched_columns(pipelines))
    sql = _create_trigger(names.trigger, names, f"AFTER INSERT OR UPDATE OF {watched}",
                          "FOR EACH ROW", [*args, marker])
    return TriggerDef(names.trigger, sql, marker)


def _statement_triggers(pipelines: Sequence[Pipeline], names: PipelineNames,
                        threshold: int) -> tuple[TriggerDef, TriggerDef]:
    key = key_sql(names.key, "n")
    # Keys are matched on their text, which every type has and no user object can hijack.
    joined = " AND ".join(f"n.{quote_ident(k)}::pg_catalog.text {op('=')} "
                          f"o.{quote_ident(k)}::pg_catalog.text" for k in names.key)
    filters = " OR ".join(f"({filter_sql(p.source.filter, 'n')})" for p in pipelines)
    # A row whose key changed has no OLD partner: it is news if a filter matches.
    moved = f"(o.{quote_ident(names.key[0])} IS NULL AND ({filters}))"
    events = (
        (names.trigger, "AFTER INSERT", f"REFERENCING NEW TABLE AS {NEW_TABLE}",
         f"{NEW_TABLE} n", insert_condition(pipelines, "n")),
        (names.bulk_trigger, "AFTER UPDATE",
         f"REFERENCING OLD TABLE AS {OLD_TABLE} NEW TABLE AS {NEW_TABLE}",
         f"{NEW_TABLE} n LEFT JOIN {OLD_TABLE} o ON {joined}",
         f"{moved} OR {update_condition(pipelines, 'o', 'n')}"),
    )
    result = []
    for name, event, referencing, from_sql, condition in events:
        args = [names.channel, names.display_table, key, from_sql, condition, str(threshold)]
        marker = _marker("statement", *args)
        sql = _create_trigger(name, names, event, f"{referencing} FOR EACH STATEMENT",
                              [*args, marker])
        result.append(TriggerDef(name, sql, marker))
    return result[0], result[1]


def drop_trigger_sql(name: str, qualified_table: str) -> str:
    return f"DROP TRIGGER IF EXISTS {quote_ident(name)} ON {qualified_table}"


def drop_index_sql(schema: str, name: str) -> str:
    return f"DROP INDEX IF EXISTS {quote_ident(schema)}.{quote_ident(name)}"
