"""Row keys: what a key value may be for its column's type, and its forms on the wire.

Keys arrive from places v10r does not control (a NOTIFY that any role can send, a queue
message), so every value is checked against its column's type before it reaches a
query: an integer key must be an integer within the column's range, a uuid key a uuid,
a composite key exactly the key columns. JSON numbers are read exactly (as `Decimal`)
and a key travels as an integer or a string, so it round-trips whatever its type — a
`numeric` key through a float would name another row, and that row's task would come
back with every catch-up scan.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import asyncpg

from v10r.compile.names import PipelineNames
from v10r.errors import PlanError
from v10r.spec.identifiers import quote_ident

MAX_KEY_CHARS = 8000  # PostgreSQL's own NOTIFY payload limit; no real key comes close

_INT_BITS = {"int2": 16, "int4": 32, "int8": 64}
_INT_LIMITS = {kind: 2 ** (bits - 1) for kind, bits in _INT_BITS.items()}
_NUMBERS = {"numeric", "float4", "float8"}
_INT_TEXT = re.compile(r"-?[0-9]{1,20}")

RowKey = Any  # wire form: int | str | bool for one key column, {column: that} for several

_COLUMN_TYPES_SQL = """
SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), n.nspname, t.typname,
       b.typname,
       CASE WHEN b.typtype OPERATOR(pg_catalog.=) 'b'
             AND b.typcategory OPERATOR(pg_catalog.<>) 'A' THEN bn.nspname
            ELSE 'pg_catalog' END
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) a.atttypid
JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) t.typnamespace
JOIN pg_catalog.pg_type b ON b.oid OPERATOR(pg_catalog.=) CASE
  WHEN t.typtype OPERATOR(pg_catalog.=) 'd' THEN t.typbasetype ELSE t.oid END
JOIN pg_catalog.pg_namespace bn ON bn.oid OPERATOR(pg_catalog.=) b.typnamespace
WHERE a.attrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1)
  AND a.attname OPERATOR(pg_catalog.=) ANY($2::pg_catalog.name[]) AND NOT a.attisdropped
"""
_SIMPLE_NAME = re.compile(r"[a-z_][a-z0-9_]*")


class InvalidKey(ValueError):
    """A value that cannot be a key of the pipeline's table."""


@dataclass(frozen=True, slots=True)
class ColumnType:
    """A column with its type as the catalog has it (key columns, the vector column)."""

    name: str
    type: str = "unknown"  # as `format_type` spells it, for messages
    schema: str = "pg_catalog"
    typname: str = ""  # the type itself (a domain, maybe); "" when unknown
    kind: str = ""  # the base type's name (`int4`, `uuid`...), what values are checked by
    operator_schema: str = "pg_catalog"  # where the type's `=` lives (citext: its own)

    @property
    def cast(self) -> str:
        """The column's type, schema-qualified, without modifiers: `numeric(10,2)` would
        round a hostile `1.005` onto the row with key 1.01."""
        if self.schema == "pg_catalog" and _SIMPLE_NAME.fullmatch(self.typname):
            return f"pg_catalog.{self.typname}"  # any word may follow a schema's dot
        return f"{quote_ident(self.schema)}.{quote_ident(self.typname)}"

    @property
    def equals(self) -> str:
        """The type's equality operator, qualified: pg_catalog's for built-in types,
        domains over them, enums and arrays; an extension type's own otherwise."""
        schema = self.operator_schema
        return f"OPERATOR({schema if schema == 'pg_catalog' else quote_ident(schema)}.=)"


async def read_column_types(conn: asyncpg.Connection, names: PipelineNames, pipeline: str,
                            columns: Sequence[str] | None = None) -> tuple[ColumnType, ...]:
    """The columns (the key by default) with their types, read from the catalog."""
    wanted = tuple(columns or names.key)
    rows = await conn.fetch(_COLUMN_TYPES_SQL, names.qualified_table, list(wanted))
    found = {row[0]: ColumnType(*row) for row in rows}
    missing = [c for c in wanted if c not in found]
    if missing:
        raise PlanError(
            f"table {names.display_table} or its column(s) {', '.join(missing)} do not exist",
            pipeline=pipeline,
            hint="check `source.table` and `source.key`, then run `v10r apply`",
        )
    return tuple(found[c] for c in wanted)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# one decoder for every call: `json.loads` with options builds a new one each time
_EXACT = json.JSONDecoder(parse_float=Decimal, parse_constant=_no_constant)


def parse_json(text: str | bytes) -> Any:
    """JSON with exact numbers: decimals as `Decimal`, no NaN/Infinity constants."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    return _EXACT.decode(text)


def wire_key(raw: RowKey) -> RowKey:
    """The key as it travels in a task: exact decimals become their text."""
    if isinstance(raw, dict):
        return {str(k): wire_key(v) for k, v in raw.items()}
    if isinstance(raw, Decimal):
        return str(raw)
    return raw


def check_key(raw: RowKey, columns: Sequence[ColumnType], *, exact: bool = True) -> RowKey:
    """`raw` (parsed with `parse_json`) as a key of `columns`, in wire form; or `InvalidKey`.

    `exact`: the JSON type must be the one the trigger sends; otherwise an integer key
    may also come as its decimal text (a task written by another tool)."""
    if len(columns) == 1:
        if isinstance(raw, (dict, list)):
            raise InvalidKey(f"key of column {columns[0].name!r} must be a single value")
        return _check_value(raw, columns[0], exact)
    if not isinstance(raw, dict) or set(raw) != {c.name for c in columns}:
        raise InvalidKey(f"key must be an object with exactly the key columns "
                         f"{', '.join(c.name for c in columns)}")
    return {c.name: _check_value(raw[c.name], c, exact) for c in columns}


def key_texts(raw: RowKey, columns: Sequence[ColumnType]) -> tuple[str, ...]:
    """The checked key as text per key column, to be cast to the column's type in SQL."""
    if type(raw) is int and len(columns) == 1 and columns[0].kind in _INT_BITS:
        limit = _INT_LIMITS[columns[0].kind]  # the usual key, once per row: no detours
        if -limit <= raw < limit:
            return (str(raw),)
    key = check_key(raw, columns, exact=False)
    values = [key] if len(columns) == 1 else [key[c.name] for c in columns]
    return tuple(_text(v) for v in values)


def _text(value: int | str | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _check_value(value: Any, column: ColumnType, exact: bool) -> int | str | bool:
    kind = column.kind
    if value is None:
        raise InvalidKey(f"key column {column.name!r} has no value")
    if kind in _INT_BITS:
        if not exact and type(value) is str and _INT_TEXT.fullmatch(value):
            value = int(value)
        limit = _INT_LIMITS[kind]
        if type(value) is not int or not -limit <= value < limit:
            raise InvalidKey(f"key column {column.name!r} ({column.type}) needs an integer "
                             f"in [{-limit}, {limit - 1}], not {_show(value)}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise InvalidKey(f"key column {column.name!r} needs true or false")
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise InvalidKey(f"key column {column.name!r} ({column.type}) cannot be {_show(value)}")
    if isinstance(value, (int, Decimal)) and kind and kind not in _NUMBERS:
        raise InvalidKey(f"key column {column.name!r} ({column.type}) cannot be a number")
    if isinstance(value, int):
        return value
    text = str(value)
    if len(text) > MAX_KEY_CHARS or "\x00" in text or not _encodable(text):
        raise InvalidKey(f"key column {column.name!r}: value too long, or not valid text "
                         "(NUL, a lone surrogate)")
    if kind == "uuid":
        return _uuid(text, column)
    if kind in _NUMBERS:
        _number(text, column)
    return text


def _encodable(text: str) -> bool:
    """PostgreSQL text is valid UTF-8: a lone surrogate (JSON allows `\\ud800`) is not."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _uuid(text: str, column: ColumnType) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise InvalidKey(f"key column {column.name!r} needs a uuid, not {_show(text)}") from None


def _number(text: str, column: ColumnType) -> None:
    try:
        Decimal(text)
    except InvalidOperation:
        raise InvalidKey(f"key column {column.name!r} ({column.type}) needs a number, "
                         f"not {_show(text)}") from None


def _show(value: Any) -> str:
    """A short, printable rendering of a hostile value for an error message."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."
