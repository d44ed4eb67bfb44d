"""No filter that `plan` accepts can make a user's INSERT or UPDATE fail.

Every operator × common column type × value shape (text, number, huge number,
boolean, non-finite, lists): plan either refuses it with an error naming the pipeline,
table, column, operator and a fix, or applies it — and then inserts and updates of the
table, the catch-up scan and the status counts all run. Each combination gets its own
table so one condition cannot hide another's error by short-circuiting.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from pydantic import ValidationError

from tests.security.conftest import Cli, Roles, write_spec
from v10r.compile.filter import filter_sql
from v10r.errors import PlanError
from v10r.listen.catchup import scan_query
from v10r.listen.targets import Target
from v10r.ops.status import counts_sql
from v10r.reconcile import apply_pipelines
from v10r.reconcile.checks import check_pipeline
from v10r.reconcile.introspect import introspect
from v10r.spec.model import Pipeline

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# column type → (a value, another value), as SQL literals
TYPES = {
    "text": ("'abc'", "'zzz'"),
    "varchar(20)": ("'abc'", "'5'"),
    "int4": ("3", "7"),
    "int8": ("5", "-9"),
    "numeric(12,2)": ("5.00", "1.5"),
    "float8": ("'NaN'", "1.5"),
    "bool": ("true", "false"),
    "timestamptz": ("'2024-01-01 10:00+00'", "now()"),
    "date": ("'2024-01-01'", "'1999-12-31'"),
    "uuid": ("'00000000-0000-0000-0000-000000000001'", "gen_random_uuid()"),
    "jsonb": ("'{\"a\": 1}'", "'5'"),
    "mood": ("'happy'", "'sad'"),
    "citext": ("'ABC'", "'abc'"),
}
SCALARS: list[Any] = ["abc", "5", "", 5, -1, 2**70, 1.5, True, False,
                      float("inf"), float("nan"), 10**2000]
LISTS: list[Any] = [["a", "b"], [1, 2**70], [True], ["a", 1, True]]
OPS = ["=", "!=", "<", "<=", ">", ">="]


@dataclass(frozen=True)
class Case:
    table: str
    type: str
    op: str
    value: Any


def cases() -> list[Case]:
    result = []
    for i, (type_, (op, value)) in enumerate(itertools.product(
            TYPES, [*itertools.product(OPS, SCALARS), *itertools.product(["in", "not in"], LISTS),
                    ("is null", None), ("is not null", None)])):
        result.append(Case(f"f_{i}", type_, op, value))
    return result


def pipeline(dsn: str, case: Case, threshold: int | None) -> Pipeline:
    condition: dict[str, Any] = {"column": "c", "op": case.op}
    if case.value is not None:
        condition["value"] = case.value
    return Pipeline.model_validate({
        "name": case.table, "database": {"dsn": dsn},
        "source": {"table": f"public.{case.table}", "key": "id", "columns": ["body"],
                   "filter": [condition]},
        "embedding": {"provider": "custom", "base_url": "http://127.0.0.1:9/v1",
                      "model": "fake", "dimensions": 3},
        "target": {"index": "none"}, "trigger": {"bulk_threshold": threshold}})


async def _tables(conn: asyncpg.Connection, all_cases: list[Case]) -> None:
    await conn.execute("CREATE EXTENSION IF NOT EXISTS citext;"
                       "CREATE TYPE mood AS ENUM ('sad', 'happy')")
    await conn.execute(";".join(
        f"CREATE TABLE {c.table} (id bigint PRIMARY KEY, body text, c {c.type})"
        for c in all_cases))


def _plan_one(p: Pipeline, state: Any) -> PlanError | None:
    try:
        check_pipeline(p, state)
    except PlanError as exc:
        return exc
    return None


@pytest.mark.parametrize("threshold", [None, 1], ids=["row-trigger", "statement-trigger"])
async def test_every_filter_plan_accepts_keeps_user_writes_working(
        pg_dsn: str, threshold: int | None) -> None:
    all_cases = cases()
    conn = await asyncpg.connect(pg_dsn)
    try:
        await _tables(conn, all_cases)
        state = await introspect(conn, [("public", c.table) for c in all_cases])
        accepted, refused = [], []
        for case in all_cases:
            try:
                p = pipeline(pg_dsn, case, threshold)
            except ValidationError:
                refused.append(case)  # refused by `validate` already
                continue
            error = _plan_one(p, state)
            if error is None:
                accepted.append(p)
                continue
            refused.append(case)
            text = str(error)
            assert case.table in text and f"public.{case.table}.c" in text, text
            assert f"c {case.op}" in text and "hint:" in text, text
        await apply_pipelines(accepted)
        for p in accepted:
            a, b = TYPES[next(c.type for c in all_cases if c.table == p.name)]
            t = p.name
            await conn.execute(
                f"INSERT INTO {t} (id, body, c) VALUES (1, 'x', {a}), (2, 'y', NULL), "
                f"(3, 'z', {b}); UPDATE {t} SET body = body || '!'; "
                f"UPDATE {t} SET c = {b} WHERE id = 1; UPDATE {t} SET c = NULL WHERE id = 3; "
                f"UPDATE {t} SET c = {a} WHERE id = 2")
            target = Target.of(p)
            await conn.fetch(scan_query(target).first)
            await conn.fetchrow(counts_sql(p, target.names))
    finally:
        await conn.close()
    assert len(accepted) > len(TYPES) * 8  # the matrix really exercised applies
    by_key = {(c.type, c.op, repr(c.value)) for c in refused}
    assert ("text", "=", "True") in by_key  # a boolean against text
    assert ("int4", "<", "'5'") in by_key  # numbers compared as text
    for type_ in TYPES:
        assert (type_, "=", "inf") in by_key and (type_, "=", "nan") in by_key
        assert (type_, "=", repr(10**2000)) in by_key


@pytest.mark.parametrize(("type_", "rows", "op", "value", "matching"), [
    ("int4", [3, 5, 7, None], ">=", 5, [2, 3]),
    ("int4", [3, 5, 7, None], "=", 2**40, []),
    ("numeric(12,2)", [1.5, 5, 7], "=", 5, [2]),
    ("float8", [0.1, 1.5, 7], "=", 0.1, [1]),
    ("bool", [True, False, None], "!=", True, [2]),
    ("text", ["a", "b", None], "!=", "a", [2]),
    ("mood", ["sad", "happy"], "in", ["happy", "glad"], [2]),
    ("int8", [1, 2, 3], "not in", [1, 3], [2]),
    ("jsonb", ['5', '"5"', 'true'], "=", 5, [1]),
])
async def test_filters_select_the_rows_they_say(pg_dsn: str, type_: str, rows: list[Any],
                                                op: str, value: Any, matching: list[int]) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("CREATE TYPE mood AS ENUM ('sad', 'happy')")
        await conn.execute(f"CREATE TABLE t (id int PRIMARY KEY, c {type_})")
        for i, v in enumerate(rows, 1):
            await conn.execute("INSERT INTO t VALUES ($1, $2::text::" + type_ + ")", i,
                               None if v is None else
                               (str(v).lower() if isinstance(v, bool) else str(v)))
        p = pipeline(pg_dsn, Case("t", type_, op, value), None)
        got = await conn.fetch(f"SELECT id FROM t WHERE {filter_sql(p.source.filter)} "
                               "ORDER BY id")
    finally:
        await conn.close()
    assert [r["id"] for r in got] == matching


async def test_plan_refuses_a_boolean_filter_on_a_text_column(roles: Roles, cli: Cli,
                                                              tmp_path) -> None:
    """The reported case, through the real CLI: clear error, exit 1, nothing changed."""
    await roles.admin(f"SET ROLE {roles.name('owner')}; "
                      "ALTER TABLE public.docs ADD COLUMN status text")
    spec = write_spec(tmp_path, """\
name: docs
database: {dsn: "${DATABASE_URL}"}
source: {table: public.docs, key: id, columns: [body],
         filter: [{column: status, op: "=", value: true}]}
embedding: {provider: local}
target: {index: none}
""")
    for command in ("plan", "apply"):
        result = await cli(command, spec, role="owner")
        assert result.code == 1, result.output
        assert "Traceback" not in result.output
        for part in ("pipeline 'docs'", "public.docs.status", "status = True", "text",
                     'value: "true"'):
            assert part in result.output, result.output
    conn = await roles.connect("admin")
    try:
        assert await conn.fetchval("SELECT to_regnamespace('v10r')") is None
        await conn.execute("INSERT INTO public.docs (id, status) VALUES (1, 'x')")
    finally:
        await conn.close()

