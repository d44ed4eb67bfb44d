"""Why a spec cannot be applied to the live database, as `PlanError`s with a fix.

Checked before anything is planned, so a bad spec changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from v10r.compile.ddl import TEXT_TYPES
from v10r.compile.filter import Scalar, kind
from v10r.errors import PlanError
from v10r.reconcile.introspect import LiveColumn, LiveState, LiveTable
from v10r.spec.model import MAX_HNSW_DIMENSIONS, MAX_VECTOR_DIMENSIONS, Condition, Pipeline

TABLE_KINDS = {"r": "table", "p": "partitioned table"}
HALFVEC_SINCE = (0, 7)
# Column types (base types of domains included) a filter value of each kind may be
# compared with; strings compare with the text of any other type.
NUMBER_TYPES = frozenset({"int2", "int4", "int8", "numeric", "float4", "float8"})
BOOL_TYPES = frozenset({"bool"})
ANY_KIND_TYPES = frozenset({"jsonb"})
MAX_NUMBER_DIGITS = 1000


def check_shared(pipelines: Sequence[Pipeline], state: LiveState) -> None:
    """Database-wide preconditions and agreements between pipelines on one table."""
    if state.pgvector_version is None:
        raise PlanError("the pgvector extension is not created in this database",
                        hint="run `CREATE EXTENSION vector;`")
    if not state.schema_exists and not state.can_create_schema:
        raise PlanError(
            f"the current user may not create schema v10r in database {state.database}",
            hint=f"GRANT CREATE ON DATABASE {state.database} TO <v10r user>, or create the "
            "schema `v10r` owned by that user")
    keys: dict[tuple[str, str], Pipeline] = {}
    for p in pipelines:
        first = keys.setdefault((p.source.schema_name, p.source.table_name), p)
        if first.source.key != p.source.key:
            raise PlanError(
                f"pipelines {first.name!r} and {p.name!r} watch {p.source.table} with "
                f"different keys ({', '.join(first.source.key)} vs {', '.join(p.source.key)})",
                pipeline=p.name, hint="use the same `source.key` for every pipeline of a table")


def check_pipeline(p: Pipeline, state: LiveState) -> None:
    table = state.table(p.source.schema_name, p.source.table_name)
    label = f"{p.source.schema_name}.{p.source.table_name}"
    if table is None or table.kind not in TABLE_KINDS:
        what = "does not exist" if table is None else "is not a table"
        raise PlanError(f"table {label} {what} in database {state.database}",
                        pipeline=p.name, obj=label,
                        hint="create the table first, or fix `source.table` (names are "
                        "case-sensitive; `schema.table`)")
    if not table.owned:
        raise PlanError(f"the current user does not own table {label}, so it cannot add "
                        "columns and triggers to it", pipeline=p.name, obj=label,
                        hint=f"run v10r apply as the table's owner, or `ALTER TABLE {label} "
                        "OWNER TO <v10r user>`")
    _check_columns(p, table, label)
    _check_key(p, table, label)
    _check_filter(p, table, label)
    _check_dimensions(p, state)


def _check_columns(p: Pipeline, table: LiveTable, label: str) -> None:
    for role, columns in (("key", p.source.key), ("text", p.source.columns),
                          ("filter", [c.column for c in p.source.filter])):
        for col in columns:
            if col not in table.columns:
                known = ", ".join(sorted(table.columns)) or "none"
                raise PlanError(f"{role} column {col!r} does not exist in {label}",
                                pipeline=p.name, obj=f"{label}.{col}",
                                hint=f"columns of {label}: {known}")
    for col in p.source.columns:
        live = table.columns[col]
        if live.base_type not in TEXT_TYPES:
            raise PlanError(f"text column {col!r} of {label} has type {live.type}, not text",
                            pipeline=p.name, obj=f"{label}.{col}",
                            hint="embed text, varchar, char or citext columns (a generated "
                            "column can turn other types into text)")


def _check_key(p: Pipeline, table: LiveTable, label: str) -> None:
    wanted = set(p.source.key)
    if not any(set(cols) == wanted for cols in table.unique_keys()):
        raise PlanError(
            f"key ({', '.join(p.source.key)}) of {label} is not a primary key or unique index",
            pipeline=p.name, obj=label,
            hint="set `source.key` to the table's primary key, or add a unique index on "
            "exactly those columns")
    unkeyable = [k for k in p.source.key if _unkeyable(table.columns[k])]
    if unkeyable:
        col = table.columns[unkeyable[0]]
        raise PlanError(
            f"key column {label}.{col.name} is of type {col.type}: arrays and JSON values "
            "cannot travel as row keys", pipeline=p.name, obj=f"{label}.{col.name}",
            hint="use a scalar key (an integer, text, uuid, date… primary key); add an "
            "identity column if the table has none")
    nullable = [k for k in p.source.key if table.columns[k].nullable]
    if nullable:
        columns = ", ".join(nullable)
        raise PlanError(
            f"key column(s) {columns} of {label} may be NULL: a row with a NULL key cannot be "
            "addressed, so it could never be embedded", pipeline=p.name,
            obj=f"{label}.{nullable[0]}",
            hint=f"make the key NOT NULL (`ALTER TABLE {label} ALTER COLUMN {nullable[0]} "
            "SET NOT NULL`, after fixing rows where it is NULL), or use the primary key")


def _unkeyable(column: LiveColumn) -> bool:
    return column.base_type.startswith("_") or column.base_type in ("json", "jsonb", "xml")


def _check_filter(p: Pipeline, table: LiveTable, label: str) -> None:
    """Refuse filter values that cannot mean anything for the column's type: the
    condition would never match (or compare numbers as text) without saying so."""
    for cond in p.source.filter:
        values = cond.value if isinstance(cond.value, list) else [cond.value]
        live = table.columns[cond.column]
        for value in values:
            if value is None:
                continue
            problem = _misfit(value, cond.op, live)
            if problem:
                what, hint = problem
                raise PlanError(
                    f"filter `{cond.column} {cond.op} {_shown(cond)}` does not fit column "
                    f"{cond.column!r} of type {live.type}: {what}", pipeline=p.name,
                    obj=f"{label}.{cond.column}", hint=hint)


def _misfit(value: Scalar, op: str, live: LiveColumn) -> tuple[str, str] | None:
    """(what is wrong, how to fix it), or None when `value` fits the column."""
    base = live.base_type
    match kind(value):
        case "number":
            if isinstance(value, float) and not math.isfinite(value):
                return f"{value!r} is not a finite number", "use a finite number"
            if isinstance(value, int) and value.bit_length() > MAX_NUMBER_DIGITS * 3.33:
                return (f"the number has more than {MAX_NUMBER_DIGITS} digits",
                        "use a smaller number")
            if base not in NUMBER_TYPES | ANY_KIND_TYPES:
                hint = (f'quote the value (`value: "{_short(value)}"`) to compare with the '
                        "column's text, or filter on a numeric column")
                return f"{_short(value)} is a number and the column is not numeric", hint
        case "bool":
            if base not in BOOL_TYPES | ANY_KIND_TYPES:
                shown = "true" if value else "false"
                hint = (f'quote the value (`value: "{shown}"`) to compare with the '
                        "column's text, or filter on a boolean column")
                return f"{shown} is a boolean and the column is not", hint
        case "string":
            if base in NUMBER_TYPES or base in BOOL_TYPES:
                noun = "number" if base in NUMBER_TYPES else "boolean"
                what = (f"{_short(value)} is text and the column holds a {noun} ({op} would "
                        "compare text)")
                return what, f"write the value without quotes, as a {noun}"
    return None


def _shown(cond: Condition) -> str:
    if isinstance(cond.value, list):
        return "[" + ", ".join(_short(v) for v in cond.value) + "]"
    return _short(cond.value)


def _short(value: Scalar | None) -> str:
    """A value for a message: huge numbers and long strings shortened."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"<a number of about {int(value.bit_length() * 0.30103) + 1} digits>"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_dimensions(p: Pipeline, state: LiveState) -> None:
    if p.dimensions > MAX_VECTOR_DIMENSIONS:
        raise PlanError(f"{p.dimensions} dimensions exceed pgvector's limit of "
                        f"{MAX_VECTOR_DIMENSIONS}", pipeline=p.name,
                        hint="use a model with fewer dimensions")
    limit = MAX_HNSW_DIMENSIONS[p.target.type]
    if p.target.index != "none" and p.dimensions > limit:
        raise PlanError(f"an HNSW index on {p.target.type} supports at most {limit} "
                        f"dimensions, this pipeline has {p.dimensions}", pipeline=p.name,
                        hint="use `target.type: halfvec`, fewer dimensions or `index: none`")
    if p.target.type == "halfvec" and _version(state.pgvector_version) < HALFVEC_SINCE:
        raise PlanError(f"halfvec needs pgvector 0.7 or later (installed: "
                        f"{state.pgvector_version})", pipeline=p.name,
                        hint="`ALTER EXTENSION vector UPDATE;` or use `target.type: vector`")


def _version(text: str | None) -> tuple[int, ...]:
    parts = []
    for part in (text or "0").split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)
