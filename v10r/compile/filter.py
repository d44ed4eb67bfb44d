"""A spec's row filter as SQL: every column quoted, every value a quoted literal.

Used in trigger `WHEN` clauses (which cannot take parameters), in the worker's fetch and
in the catch-up scan, so a row is in or out of a pipeline by the same rule everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from v10r.spec.identifiers import quote_ident, quote_literal
from v10r.spec.model import Condition

Scalar = str | int | float | bool


def literal(value: Scalar) -> str:
    match value:
        case bool():
            return "true" if value else "false"
        case int():
            return str(value)
        case float():
            if not math.isfinite(value):
                raise ValueError("filter values must be finite numbers")
            return repr(value)
        case str():
            return quote_literal(value)
    raise TypeError(f"unsupported filter value {value!r}")


def condition_sql(condition: Condition, row: str | None = None) -> str:
    """One condition; `row` is a table alias or `NEW`/`OLD` in a trigger."""
    column = f"{row}.{quote_ident(condition.column)}" if row else quote_ident(condition.column)
    value = condition.value
    match condition.op:
        case "is null":
            return f"{column} IS NULL"
        case "is not null":
            return f"{column} IS NOT NULL"
        case "in" | "not in":
            assert isinstance(value, list)
            items = ", ".join(_compared(column, v) for v in value)
            negate = "NOT " if condition.op == "not in" else ""
            return f"{column}::text {negate}IN ({items})"
        case op:
            assert value is not None and not isinstance(value, list)
            if isinstance(value, bool):
                return f"{column} {op} {literal(value)}"
            return f"{column}::text {op} {_compared(column, value)}" if isinstance(value, str) \
                else f"{column} {op} {literal(value)}"


def _compared(column: str, value: Scalar) -> str:
    # Lists mix types freely; compare as text so `status IN ('a', 1)` is well-typed.
    return quote_literal(str(value).lower() if isinstance(value, bool) else str(value))


def filter_sql(conditions: Sequence[Condition], row: str | None = None) -> str:
    """All conditions ANDed, or `true` when the pipeline has no filter."""
    if not conditions:
        return "true"
    return " AND ".join(f"({condition_sql(c, row)})" for c in conditions)
