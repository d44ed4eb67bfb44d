"""Typed plan operations: each knows its SQL, where it runs and whether it destroys data.

`v10r plan` renders a list of these; `v10r apply` executes the very same list, so what
was shown is what runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from v10r.compile import ddl
from v10r.compile.names import bookkeeping_table
from v10r.spec.identifiers import qualified, quote_ident


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
        return (ddl.create_schema_sql(), ddl.bookkeeping_sql())


@dataclass(frozen=True, slots=True)
class CreateFunction(Operation):
    replace: bool = False

    def describe(self) -> str:
        return f"{'update' if self.replace else 'create'} function v10r.v10r_notify()"

    @property
    def sql(self) -> tuple[str, ...]:
        return (ddl.notify_function_sql(),)


@dataclass(frozen=True, slots=True)
class AddColumn(Operation):
    schema: str
    table: str
    column: str
    type: str
    renamed_from: str | None = None

    def describe(self) -> str:
        note = f" (renamed from {self.renamed_from}: that name is taken)" if self.renamed_from \
            else ""
        return f"add column {self.schema}.{self.table}.{self.column} {self.type}{note}"

    @property
    def sql(self) -> tuple[str, ...]:
        return ((f"ALTER TABLE {qualified(self.schema, self.table)} "
                f"ADD COLUMN IF NOT EXISTS {quote_ident(self.column)} {self.type}"),)


@dataclass(frozen=True, slots=True)
class ReplaceColumn(Operation):
    """v10r's own column with the wrong type (e.g. new dimensions): its values are void."""

    schema: str
    table: str
    column: str
    old_type: str
    type: str
    destructive = True

    def describe(self) -> str:
        return (f"replace column {self.schema}.{self.table}.{self.column}: {self.old_type} → "
                f"{self.type} (existing vectors are dropped and re-embedded)")

    @property
    def sql(self) -> tuple[str, ...]:
        table = qualified(self.schema, self.table)
        return (f"ALTER TABLE {table} DROP COLUMN {quote_ident(self.column)}",
                f"ALTER TABLE {table} ADD COLUMN {quote_ident(self.column)} {self.type}")


@dataclass(frozen=True, slots=True)
class DropColumn(Operation):
    schema: str
    table: str
    column: str
    destructive = True

    def describe(self) -> str:
        return f"drop column {self.schema}.{self.table}.{self.column}"

    @property
    def sql(self) -> tuple[str, ...]:
        return ((f"ALTER TABLE {qualified(self.schema, self.table)} "
                f"DROP COLUMN IF EXISTS {quote_ident(self.column)}"),)


@dataclass(frozen=True, slots=True)
class CreateIndex(Operation):
    schema: str
    table: str
    index: ddl.IndexDef
    transactional = False

    def describe(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.index.options)
        return (f"build HNSW index {self.index.name} on {self.schema}.{self.table}"
                f"({self.index.column} {self.index.opclass}, {opts}) concurrently")

    @property
    def sql(self) -> tuple[str, ...]:
        return (self.index.create_sql(qualified(self.schema, self.table)),)


@dataclass(frozen=True, slots=True)
class DropIndex(Operation):
    schema: str
    name: str
    reason: str

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

    def describe(self) -> str:
        return f"drop trigger {self.name} on {self.schema}.{self.table}"

    @property
    def sql(self) -> tuple[str, ...]:
        return (ddl.drop_trigger_sql(self.name, qualified(self.schema, self.table)),)


@dataclass(frozen=True, slots=True)
class RecordPipeline(Operation):
    """Upsert the pipeline's bookkeeping row; runs last, so it only records what exists."""

    compiled: ddl.CompiledPipeline
    triggers: tuple[str, ...]

    def describe(self) -> str:
        return f"record pipeline {self.compiled.name} in v10r.pipelines"

    @property
    def sql(self) -> tuple[str, ...]:
        return ((f"INSERT INTO {bookkeeping_table()} (name, database_name, schema_name, "
                "table_name, embedding_column, columns, index_name, triggers, definition_hash, "
                "fingerprint, dimensions, model, applied_at) VALUES ($1, $2, $3, $4, $5, $6, $7, "
                "$8, $9, $10, $11, $12, now()) ON CONFLICT (name) DO UPDATE SET "
                "database_name = EXCLUDED.database_name, schema_name = EXCLUDED.schema_name, "
                "table_name = EXCLUDED.table_name, embedding_column = EXCLUDED.embedding_column, "
                "columns = EXCLUDED.columns, index_name = EXCLUDED.index_name, "
                "triggers = EXCLUDED.triggers, definition_hash = EXCLUDED.definition_hash, "
                "fingerprint = EXCLUDED.fingerprint, dimensions = EXCLUDED.dimensions, "
                "model = EXCLUDED.model, applied_at = now()"),)

    @property
    def args(self) -> tuple[object, ...]:
        c = self.compiled
        n = c.names
        return (c.name, c.pipeline.database.name, n.schema, n.table, n.embedding,
                [col.name for col in c.columns], c.index.name if c.index else None,
                list(self.triggers), c.definition_hash, c.fingerprint, c.pipeline.dimensions,
                c.pipeline.model)


@dataclass(frozen=True, slots=True)
class ForgetPipeline(Operation):
    name: str
    kept_columns: tuple[str, ...] = ()

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


def op_kind(op: Operation) -> str:
    return type(op).__name__


def op_args(op: Operation) -> tuple[object, ...]:
    match op:
        case RecordPipeline() | ForgetPipeline():
            return op.args
        case _:
            return ()
