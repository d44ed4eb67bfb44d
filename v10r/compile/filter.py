"""A spec's row filter as SQL: every column quoted, every value a quoted literal.

Used in trigger arguments (which cannot take parameters), in the worker's fetch, in the
catch-up scan and in status counts, so a row is in or out of a pipeline by the same
rule everywhere.

The condition runs inside users' INSERTs and UPDATEs, so it must never raise, whatever
the column's type: strings compare with the column's text form, numbers and booleans
with its `jsonb` form (exact numeric comparison, no cast that can overflow; a column
of another type simply does not match). `plan` refuses values that do not fit the
column (`v10r.reconcile.checks`). Every function and operator is schema-qualified, so
no object a user creates in the search path is ever called (CVE-2018-1058).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from v10r.spec.identifiers import quote_ident, quote_literal
from v10r.spec.model import Condition

Scalar = str | int | float | bool
Kind = Literal["bool", "number", "string"]

# Spec operator → the pg_catalog operator it stands for.
OPERATORS = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
TEXT = "pg_catalog.text"
JSONB = "pg_catalog.jsonb"


def op(symbol: str) -> str:
    """A schema-qualified operator: `OPERATOR(pg_catalog.=)`."""
    return f"OPERATOR(pg_catalog.{symbol})"


def kind(value: Scalar) -> Kind:
    """How a value compares: booleans are ints in Python, so test them first."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string"


def literal(value: Scalar) -> str:
    """The value as a typed SQL literal of the form it is compared in."""
    match kind(value):
        case "bool":
            return f"{quote_literal('true' if value else 'false')}::{JSONB}"
        case "number":
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError("filter values must be finite numbers")
            return f"{quote_literal(str(value) if isinstance(value, int) else repr(value))}::{JSONB}"
    return f"{quote_literal(str(value))}::{TEXT}"


def compared(column: str, value: Scalar) -> str:
    """The column in the form `value` compares with (see the module docstring)."""
    if kind(value) == "string":
        return f"{column}::{TEXT}"
    return f"pg_catalog.to_jsonb({column})"


def condition_sql(condition: Condition, row: str | None = None) -> str:
    """One condition; `row` is a table alias or `($1)`/`($2)` in a trigger."""
    column = f"{row}.{quote_ident(condition.column)}" if row else quote_ident(condition.column)
    value = condition.value
    match condition.op:
        case "is null":
            return f"{column} IS NULL"
        case "is not null":
            return f"{column} IS NOT NULL"
        case "in" | "not in":
            assert isinstance(value, list)
            matched = _any_of(column, value)
            return f"NOT ({matched})" if condition.op == "not in" else matched
        case symbol:
            assert value is not None and not isinstance(value, list)
            return f"{compared(column, value)} {op(OPERATORS[symbol])} {literal(value)}"


def _any_of(column: str, values: Sequence[Scalar]) -> str:
    """`column` equals one of `values`; strings and the rest are compared apart."""
    parts = []
    for group in ([v for v in values if kind(v) == "string"],
                  [v for v in values if kind(v) != "string"]):
        if group:
            items = ", ".join(literal(v) for v in group)
            parts.append(f"{compared(column, group[0])} {op('=')} ANY (ARRAY[{items}])")
    return " OR ".join(parts) if len(parts) == 1 else f"({' OR '.join(parts)})"


def filter_sql(conditions: Sequence[Condition], row: str | None = None) -> str:
    """All conditions ANDed, or `true` when the pipeline has no filter."""
    if not conditions:
        return "true"
    return " AND ".join(f"({condition_sql(c, row)})" for c in conditions)
