"""Typed plan operations: each knows its SQL, where it runs and whether it destroys data.

`v10r plan` renders a list of these; `v10r apply` executes the very same list, so what
was shown is what runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from v10r.compile import ddl
from v10r.compile.names import bookkeeping_table
from v10r.reconcile.introspect import Recorded
from v10r.spec.identifiers import qualified, quote_ident, quote_literal


@dataclass(frozen=True, slots=True)
class Operation:
    """Base of every plan step. `pipeline` is None for objects shared by all pipelines."""

    pipeline: str | None = field(default=None, kw_only=True)

    transactional = True  # False: runs after the transaction commits (concurrent builds)
    destructive = False

    @property
    def sql(self) -> tuple[str, ...]:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class CreateSchema(Operation):
    def describe(self) -> str:
        return "create schema v10r and its bookkeeping table"

    @property
    def sql(self) -> tuple[str, ...]:
        return (ddl.create_schema_sql(), ddl.bookkeeping_sql(), ddl.backfill_sql())


@dataclass(frozen=True, slots=True)
class CreateFunction(Operation):
    replace: bool = False

    def describe(self) -> str:
        return f"{'update' if self.replace else 'create'} function v10r.v10r_notify()"

    @property
    def sql(self) -> tuple[str, ...]:
        return (ddl.notify_function_sql(),)


def comment_column_sql(schema: str, table: str, column: str, text: str) -> str:
    return (f"COMMENT ON COLUMN {qualified(schema, table)}.{quote_ident(column)} IS "
            f"{quote_literal(text)}")


@dataclass(frozen=True, slots=True)
class UpgradeBookkeeping(Operation):
    """Bookkeeping created by an older v10r: add the columns it lacks."""

    missing: tuple[str, ...]

    def describe(self) -> str:
        return f"add {', '.join(self.missing)} to v10r.pipelines"

    @property
    def sql(self) -> tuple[str, ...]:
        return (ddl.upgrade_bookkeeping_sql(self.missing),)


@dataclass(frozen=True, slots=True)
class ColumnOperation(Operation):
    """An operation on one column of a user's table."""

    schema: str
    table: str
    column: str

    @property
    def ref(self) -> str:
        return f"{self.schema}.{self.table}.{self.column}"

    def comment_sql(self, text: str) -> str:
        return comment_column_sql(self.schema, self.table, self.column, text)


@dataclass(frozen=True, slots=True)
class AddColumn(ColumnOperation):
    type: str
    marker: str
    renamed_from: str | None = None

    def describe(self) -> str:
        note = f" (renamed from {self.renamed_from}: that name is taken)" if self.renamed_from \
            else ""
        return f"add column {self.ref} {self.type}{note}"

    @property
    def sql(self) -> tuple[str, ...]:
        return ((f"ALTER TABLE {qualified(self.schema, self.table)} "
                f"ADD COLUMN IF NOT EXISTS {quote_ident(self.column)} {self.type}"),
                self.comment_sql(self.marker))


@dataclass(frozen=True, slots=True)
class MarkColumn(ColumnOperation):
    """Set v10r's ownership marker on a column it already manages."""

    marker: str
    reason: str

    def describe(self) -> str:
        return f"mark column {self.ref} as {self.marker} ({self.reason})"

    @property
    def sql(self) -> tuple[str, ...]:
        return (self.comment_sql(self.marker),)


@dataclass(frozen=True, slots=True)
class ReplaceColumn(ColumnOperation):
    """In-place re-embedding: v10r's column with the wrong type, or a hash to reset."""

    old_type: str
    type: str
    marker: str
    destructive = True

    def describe(self) -> str:
        what = "vectors" if self.type.startswith(("vector", "halfvec")) else "values"
        return (f"replace column {self.ref}: {self.old_type} → "
                f"{self.type} (existing {what} are dropped; every row is re-embedded)")

    @property
    def sql(self) -> tuple[str, ...]:
        table = qualified(self.schema, self.table)
        return (f"ALTER TABLE {table} DROP COLUMN {quote_ident(self.column)}",
                f"ALTER TABLE {table} ADD COLUMN {quote_ident(self.column)} {self.type}",
                self.comment_sql(self.marker))


@dataclass(frozen=True, slots=True)
class DropColumn(ColumnOperation):
    destructive = True

    def describe(self) -> str:
        return f"drop column {self.ref}"

    @property
    def sql(self) -> tuple[str, ...]:
        return ((f"ALTER TABLE {qualified(self.schema, self.table)} "
                f"DROP COLUMN IF EXISTS {quote_ident(self.column)}"),)


@dataclass(frozen=True, slots=True)
class RenameColumns(Operation):
    """Renames in one statement list, run inside the apply transaction (instant: no
    table rewrite). Used for a renamed `target.column` and for a blue/green cutover."""

    schema: str
    table: str
    renames: tuple[tuple[str, str], ...]  # (old, new), in order
    index_renames: tuple[tuple[str, str], ...] = ()
    marks: tuple[tuple[str, str], ...] = ()  # (column, marker) after the renames
    summary: str = ""

    def describe(self) -> str:
        if self.summary:
            return self.summary
        pairs = ", ".join(f"{a} → {b}" for a, b in self.renames)
        return f"rename columns of {self.schema}.{self.table}: {pairs}"

    @property
    def sql(self) -> tuple[str, ...]:
        table = qualified(self.schema, self.table)
        statements = [f"ALTER TABLE {table} RENAME COLUMN {quote_ident(a)} TO {quote_ident(b)}"
                      for a, b in self.renames]
        statements += [f"ALTER INDEX {quote_ident(self.schema)}.{quote_ident(a)} RENAME TO "
                       f"{quote_ident(b)}" for a, b in self.index_renames]
        statements += [comment_column_sql(self.schema, self.table, c, m) for c, m in self.marks]
        return tuple(statements)


@dataclass(frozen=True, slots=True)
class CreateIndex(Operation):
    schema: str
    table: str
    index: ddl.IndexDef
    marker: str
    transactional = False

    def describe(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.index.options)
        return (f"build HNSW index {self.index.name} on {self.schema}.{self.table}"
                f"({self.index.column} {self.index.opclass}, {opts}) concurrently")

    @property
    def sql(self) -> tuple[str, ...]:
        return (self.index.create_sql(qualified(self.schema, self.table)),
                (f"COMMENT ON INDEX {quote_ident(self.schema)}.{quote_ident(self.index.name)} "
                f"IS {quote_literal(self.marker)}"))


@dataclass(frozen=True, slots=True)
class MarkIndex(Operation):
    schema: str
    name: str
    marker: str
    reason: str

    def describe(self) -> str:
        return f"mark index {self.schema}.{self.name} as {self.marker} ({self.reason})"

    @property
    def sql(self) -> tuple[str, ...]:
        return ((f"COMMENT ON INDEX {quote_ident(self.schema)}.{quote_ident(self.name)} "
                f"IS {quote_literal(self.marker)}"),)


@dataclass(frozen=True, slots=True)
class DropIndex(Operation):
    schema: str
    name: str
    reason: str
    invalid: bool = False  # a failed concurrent build: it serves no query, nothing is lost

    @property
    def destructive(self) -> bool:  # type: ignore[override]
        return not self.invalid

    def describe(self) -> str:
        return f"drop index {self.schema}.{self.name} ({self.reason})"

    @property
    def sql(self) -> tuple[str, ...]:
        return (ddl.drop_index_sql(self.schema, self.name),)


@dataclass(frozen=True, slots=True)
class CreateTrigger(Operation):
    """(Re)creates one trigger; the drop and create share the apply transaction."""

    schema: str
    table: str
    trigger: ddl.TriggerDef
    replace: bool = False

    def describe(self) -> str:
        verb = "update" if self.replace else "create"
        return f"{verb} trigger {self.trigger.name} on {self.schema}.{self.table}"

    @property
    def sql(self) -> tuple[str, ...]:
        drop = ddl.drop_trigger_sql(self.trigger.name, qualified(self.schema, self.table))
        return (drop, self.trigger.sql)


@dataclass(frozen=True, slots=True)
class DropTrigger(Operation):
    schema: str
    table: str
    name: str
    destructive = True

    def describe(self) -> str:
        return f"drop trigger {self.name} on {self.schema}.{self.table}"

    @property
    def sql(self) -> tuple[str, ...]:
        return (ddl.drop_trigger_sql(self.name, qualified(self.schema, self.table)),)


_RECORD_COLUMNS = ("name", "database_name", "schema_name", "table_name", "embedding_column",
                   "columns", "index_name", "triggers", "definition_hash", "fingerprint",
                   "dimensions", "model", "spec_source", "next_column", "next_fingerprint",
                   "retired")


@dataclass(frozen=True, slots=True)
class RecordPipeline(Operation):
    """Upsert the pipeline's bookkeeping row; runs last, so it only records what exists."""

    row: Recorded

    def describe(self) -> str:
        return f"record pipeline {self.row.name} in v10r.pipelines"

    @property
    def sql(self) -> tuple[str, ...]:
        cols = ", ".join(_RECORD_COLUMNS)
        params = ", ".join(f"${i}" for i in range(1, len(_RECORD_COLUMNS) + 1))
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _RECORD_COLUMNS[1:])
        return ((f"INSERT INTO {bookkeeping_table()} ({cols}, applied_at) VALUES ({params}, "
                 f"pg_catalog.now()) ON CONFLICT (name) DO UPDATE SET {updates}, "
                 "applied_at = pg_catalog.now()"),)

    @property
    def args(self) -> tuple[object, ...]:
        r = self.row
        return (r.name, r.database_name, r.schema, r.table, r.embedding_column,
                list(r.columns), r.index_name, list(r.triggers), r.definition_hash,
                r.fingerprint, r.dimensions, r.model, r.spec_source, r.next_column,
                r.next_fingerprint, list(r.retired))


@dataclass(frozen=True, slots=True)
class ForgetPipeline(Operation):
    """Pruning a pipeline: v10r stops keeping its vectors current."""

    name: str
    kept_columns: tuple[str, ...] = ()
    destructive = True

    def describe(self) -> str:
        kept = (f"; columns kept: {', '.join(self.kept_columns)} (`--drop-columns` removes "
                "them)") if self.kept_columns else ""
        return f"forget pipeline {self.name} in v10r.pipelines{kept}"

    @property
    def sql(self) -> tuple[str, ...]:
        return (f"DELETE FROM {bookkeeping_table()} WHERE name = $1",)

    @property
    def args(self) -> tuple[object, ...]:
        return (self.name,)


def destructive(operations: Sequence[Operation]) -> list[Operation]:
    """The operations `apply` confirms first, in plan order."""
    return [op for op in operations if op.destructive]


def op_kind(op: Operation) -> str:
    return type(op).__name__


def op_args(op: Operation) -> tuple[object, ...]:
    match op:
        case RecordPipeline() | ForgetPipeline():
            return op.args
        case _:
            return ()
