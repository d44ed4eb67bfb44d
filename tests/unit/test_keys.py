"""Row keys: checked against their column's type, exact on the wire, whatever their type."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from v10r.errors import QueueError
from v10r.keys import ColumnType, InvalidKey, check_key, key_texts, parse_json, wire_key
from v10r.tasks import Task

pytestmark = pytest.mark.unit


def col(kind: str, name: str = "id", typname: str | None = None) -> ColumnType:
    return ColumnType(name, kind, "pg_catalog", typname or kind, kind)


INT4, INT8, UUID, TEXT, NUMERIC = col("int4"), col("int8"), col("uuid"), col("text"), col("numeric")


@pytest.mark.parametrize(("raw", "columns", "expected"), [
    ("5", [INT4], 5),
    ("-2147483648", [INT4], -2147483648),
    ("2147483647", [INT4], 2147483647),
    ("9223372036854775807", [INT8], 9223372036854775807),
    ("12345678901234567890.5", [NUMERIC], "12345678901234567890.5"),
    ("1.50", [NUMERIC], "1.50"),
    ("7", [NUMERIC], 7),
    ("1e-7", [col("float8")], "1E-7"),
    ('"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"', [UUID], "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    ('"it\'s \\"q\\" \\\\ ünï ✓ \\t"', [TEXT], "it's \"q\" \\ ünï ✓ \t"),
    ('"2024-02-29T23:59:59.999999+00:00"', [col("timestamptz")], "2024-02-29T23:59:59.999999+00:00"),
    ("true", [col("bool")], True),
    ('{"b": "x", "a": 1}', [col("int4", "a"), col("text", "b")], {"a": 1, "b": "x"}),
])
def test_a_trigger_key_of_every_type_is_accepted_exactly(raw, columns, expected):
    key = check_key(parse_json(raw), columns)
    assert key == expected and type(key) is type(expected)


@pytest.mark.parametrize(("raw", "columns", "reason"), [
    ('"x1"', [INT8], "needs an integer"),
    ('"5"', [INT4], "needs an integer"),
    ("2147483648", [INT4], "needs an integer"),
    ("-2147483649", [INT4], "needs an integer"),
    ("32768", [col("int2")], "needs an integer"),
    ("9223372036854775808", [INT8], "needs an integer"),
    ("1.5", [INT8], "needs an integer"),
    ("true", [INT8], "needs an integer"),
    ("null", [INT8], "no value"),
    ("[1]", [INT8], "single value"),
    ('{"id": 1}', [INT8], "single value"),
    ('"not-a-uuid"', [UUID], "needs a uuid"),
    ("5", [UUID], "cannot be a number"),
    ("5", [TEXT], "cannot be a number"),
    ('"a\\u0000b"', [TEXT], "NUL"),
    ('"a\\ud800b"', [TEXT], "surrogate"),
    ('"' + "x" * 9000 + '"', [TEXT], "too long"),
    ('"abc"', [NUMERIC], "needs a number"),
    ("1", [col("bool")], "true or false"),
    ('{"a": 1}', [col("int4", "a"), col("text", "b")], "exactly the key columns"),
    ('{"a": 1, "b": "x", "c": 2}', [col("int4", "a"), col("text", "b")], "exactly the key"),
    ('{"a": "1", "b": "x"}', [col("int4", "a"), col("text", "b")], "needs an integer"),
    ("1", [col("int4", "a"), col("text", "b")], "exactly the key columns"),
])
def test_what_cannot_be_a_key_is_refused_with_the_reason(raw, columns, reason):
    with pytest.raises(InvalidKey, match=reason):
        check_key(parse_json(raw), columns)


def test_json_numbers_are_read_exactly_and_constants_refused():
    assert parse_json("12345678901234567890.5") == Decimal("12345678901234567890.5")
    assert parse_json("9007199254740993") == 9007199254740993  # 2**53 + 1
    for constant in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(ValueError):
            parse_json(constant)


@pytest.mark.parametrize("raw", ["12345678901234567890.5", "9007199254740993",
                                 '{"a": 0.1000000000000000055511151231257827, "b": "é"}',
                                 '"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"'])
def test_a_key_survives_the_task_message_unchanged(raw):
    key = wire_key(parse_json(raw))
    task = Task(pipeline="p", database="d", table="s.t", id=key, text_column="body",
                embedding_column="body_embedding")
    again = Task.from_json(task.to_json())
    assert again.id == key and again.key == task.key
    assert json.loads(task.to_json())["ids"] == [key]


def test_an_old_message_with_a_float_key_is_read_exactly():
    raw = (b'{"v": 1, "pipeline": "p", "database": "d", "table": "s.t", '
           b'"id": 12345678901234567890.5, "text_column": "b", "embedding_column": "e"}')
    assert Task.from_json(raw).id == "12345678901234567890.5"


def test_worker_side_texts_accept_an_integer_given_as_text():
    assert key_texts("42", [INT8]) == ("42",)
    assert key_texts({"a": 1, "b": False}, [col("int4", "a"), col("bool", "b")]) == ("1", "false")
    with pytest.raises(InvalidKey):
        key_texts("4x", [INT8])


def test_an_unknown_column_type_checks_the_shape_only():
    unknown = ColumnType("id")
    assert check_key(parse_json('"2024-01-01"'), [unknown]) == "2024-01-01"
    assert check_key(parse_json("3"), [unknown]) == 3
    with pytest.raises(InvalidKey):
        check_key(parse_json('{"x": 1}'), [unknown])


def test_the_cast_is_schema_qualified_and_drops_modifiers():
    column = ColumnType("id", "numeric(10,2)", "pg_catalog", "numeric", "numeric")
    assert column.cast == "pg_catalog.numeric" and column.equals == "OPERATOR(pg_catalog.=)"
    citext = ColumnType("k", "citext", "My Ext", "citext", "citext", "My Ext")
    assert citext.cast == '"My Ext"."citext"' and citext.equals == 'OPERATOR("My Ext".=)'


@pytest.mark.parametrize("raw", [b"[" * 100_000 + b"]" * 100_000, b'{"v": 1}', b"\xff",
                                 b'{"v": 1, "id": NaN}', b"[]"])
def test_a_malformed_task_message_is_a_clear_queue_error(raw):
    with pytest.raises(QueueError, match="malformed task message|not supported"):
        Task.from_json(raw)


@pytest.mark.parametrize(("raw", "column"), [
    (2147483648, INT4), (-2147483649, INT4), (32768, col("int2")), (2 ** 63, INT8),
])
def test_an_integer_outside_its_column_is_refused_on_the_worker_side(raw, column):
    with pytest.raises(InvalidKey, match="needs an integer"):
        key_texts(raw, [column])


@pytest.mark.parametrize(("raw", "column", "expected"), [
    (-32768, col("int2"), ("-32768",)), (2 ** 63 - 1, INT8, ("9223372036854775807",)),
    (7, NUMERIC, ("7",)), (True, col("bool"), ("true",)),
])
def test_worker_side_texts_of_scalar_keys(raw, column, expected):
    assert key_texts(raw, [column]) == expected


@pytest.mark.parametrize("raw", [1, -5, 2 ** 63 - 1, 10 ** 30, True, 'x"y\\', "ünï ✓",
                                 Decimal("1.50"), {"b": "x", "a": 1}])
@pytest.mark.parametrize("pipeline", ["docs", 'pipé"line'])
def test_a_task_key_is_the_compact_sorted_json_of_pipeline_and_key(raw, pipeline):
    task = Task(pipeline, "db", "public.t", wire_key(raw), "body", "emb")
    expected = json.dumps([pipeline, wire_key(raw)], separators=(",", ":"), sort_keys=True)
    assert task.key == expected.encode()
