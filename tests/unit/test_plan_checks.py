"""Plan-time checks against hand-built live states: nullable keys and filter values that
do not fit their column are refused with an error naming what and how to fix it."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from v10r.errors import PlanError
from v10r.reconcile.checks import check_pipeline
from v10r.reconcile.introspect import LiveColumn, LiveIndex, LiveState, LiveTable
from v10r.spec.model import Pipeline

pytestmark = pytest.mark.unit


def state(columns: dict[str, tuple[str, str, bool]], key: tuple[str, ...] = ("id",)) -> LiveState:
    """public.docs with `columns` (name → (type, base type, nullable)) and a unique key."""
    cols = {"body": LiveColumn("body", "text", "text"),
            **{n: LiveColumn(n, t, b, nullable) for n, (t, b, nullable) in columns.items()}}
    table = LiveTable("public", "docs", "r", True, columns=cols, indexes={
        "docs_key": LiveIndex("docs_key", key, True, True, False, "btree", (), ())})
    return LiveState(180006, "0.8.1", "app", True, False, False, None,
                     tables={("public", "docs"): table})


def pipeline(key: Any = "id", filter: Any = ()) -> Pipeline:
    return Pipeline.model_validate({"name": "docs", "source": {
        "table": "public.docs", "key": key, "columns": ["body"], "filter": list(filter)}})


ID = {"id": ("bigint", "int8", False)}


def test_a_unique_but_nullable_key_is_refused_with_the_fix() -> None:
    with pytest.raises(PlanError) as err:
        check_pipeline(pipeline(), state({"id": ("bigint", "int8", True)}))
    text = str(err.value)
    assert "pipeline 'docs'" in text and "public.docs.id" in text and "may be NULL" in text
    assert "ALTER TABLE public.docs ALTER COLUMN id SET NOT NULL" in text


def test_a_composite_key_with_one_nullable_column_is_refused() -> None:
    live = state({"a": ("integer", "int4", False), "b": ("text", "text", True)}, ("a", "b"))
    with pytest.raises(PlanError, match=r"key column\(s\) b of public.docs may be NULL"):
        check_pipeline(pipeline(key=["a", "b"]), live)
    live = state({"a": ("integer", "int4", False), "b": ("text", "text", False)}, ("a", "b"))
    check_pipeline(pipeline(key=["a", "b"]), live)


@pytest.mark.parametrize(("column", "op", "value", "accepted"), [
    (("text", "text"), "=", True, False),  # the reported case
    (("text", "text"), "=", "true", True),
    (("text", "text"), ">", 5, False),
    (("character varying(20)", "varchar"), "in", ["a", 1], False),
    (("integer", "int4"), "=", 5, True),
    (("integer", "int4"), "=", 2**40, True),
    (("integer", "int4"), "<", "5", False),
    (("integer", "int4"), "=", True, False),
    (("integer", "int4"), "=", 10**2000, False),
    (("numeric(12,2)", "numeric"), ">=", 1.5, True),
    (("double precision", "float8"), "=", float("inf"), False),
    (("double precision", "float8"), "=", float("nan"), False),
    (("boolean", "bool"), "!=", False, True),
    (("boolean", "bool"), "=", "true", False),
    (("boolean", "bool"), "in", [True, False], True),
    (("jsonb", "jsonb"), "=", 5, True),
    (("jsonb", "jsonb"), "=", True, True),
    (("date", "date"), "<", "2024-01-01", True),
    (("date", "date"), "<", 20240101, False),
    (("uuid", "uuid"), "=", "00000000-0000-0000-0000-000000000000", True),
    (("mood", "mood"), "in", ["happy", "sad"], True),
    (("mood", "mood"), "is null", None, True),
    (("my_int", "int4"), "=", 3, True),  # a domain over int4
])
def test_filter_values_must_fit_the_column(column: tuple[str, str], op: str, value: Any,
                                           accepted: bool) -> None:
    live = state({**ID, "c": (*column, True)})
    condition = {"column": "c", "op": op} | ({} if value is None else {"value": value})
    try:
        p = pipeline(filter=[condition])
    except ValidationError:  # refused before plan, by the spec itself (`v10r validate`)
        assert not accepted
        return
    if accepted:
        check_pipeline(p, live)
        return
    with pytest.raises(PlanError) as err:
        check_pipeline(p, live)
    text = str(err.value)
    assert "pipeline 'docs'" in text and "public.docs.c" in text and f"c {op} " in text
    assert column[0] in text and "hint:" in text and len(text) < 600


def test_a_huge_number_is_refused_by_the_spec_before_plan() -> None:
    with pytest.raises(ValidationError, match="64-bit integer range"):
        pipeline(filter=[{"column": "c", "value": 10**5000}])
