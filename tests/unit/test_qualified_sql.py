"""Every call, operator and cast in the SQL v10r generates is schema-qualified.

Generated SQL runs in users' sessions (triggers) and in v10r's own (scans, counts,
the guarded write), whose search path may hold a schema other roles can create in; an
unqualified `to_jsonb(x)` or `a = b` would then run their code (CVE-2018-1058). This
scans each piece of generated SQL for anything resolved through the search path.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from v10r.compile import ddl
from v10r.compile.content_hash import source_hash_sql, stored_hash_sql
from v10r.compile.filter import filter_sql
from v10r.listen.catchup import scan_query
from v10r.listen.targets import Target
from v10r.spec.model import Pipeline

pytestmark = pytest.mark.unit

# Words followed by "(" that are syntax, not functions looked up in the search path.
SYNTAX = {"coalesce", "array", "any", "not", "and", "or", "operator", "select", "from",
          "where", "on", "as", "join", "exists", "limit", "values", "then", "else", "if",
          "when", "null", "is", "using", "execute", "perform"}
LITERAL = re.compile(r"'(?:[^']|'')*'")
QUOTED = re.compile(r'"(?:[^"]|"")*"')
COMMENT = re.compile(r"--[^\n]*")
QUALIFIED_OP = re.compile(r"OPERATOR\(pg_catalog\.[^)\s]+\)")


def unqualified(sql: str) -> list[str]:
    """What in `sql` is looked up through the search path."""
    text = COMMENT.sub(" ", sql)
    text = LITERAL.sub(" L ", QUOTED.sub(" Q ", text))
    text = QUALIFIED_OP.sub(" @ ", text)
    found = []
    for m in re.finditer(r"(?<![\w.$])([A-Za-z_]\w*)\s*\(", text):
        if m.group(1).lower() not in SYNTAX:
            found.append(f"call {m.group(1)}(")
    found += [f"cast ::{m.group(1)}" for m in re.finditer(r"::\s*(?!pg_catalog\.)(\w+)", text)]
    found += [f"operator {m.group(0)}" for m in re.finditer(r"(?<!:)[=<>!|+*/%-]+", text)
              if m.group(0) not in ("-",)]
    for pattern in (r"\bIS\s+(NOT\s+)?DISTINCT\b", r"\bIN\s*\(", r"\bNULLIF\b",
                    r"\bCASE\s+(?!WHEN)\w"):
        found += [f"implicit = in {m.group(0)}" for m in re.finditer(pattern, text, re.IGNORECASE)]
    return found


def pipeline(**source: Any) -> Pipeline:
    return Pipeline.model_validate({
        "name": "p", "source": {"table": "public.docs", "key": ["id"], "columns": ["a", "b"],
                                **source}})


FILTER = [{"column": "s", "op": op, "value": v} for op in ("=", "!=", "<", "<=", ">", ">=")
          for v in ("x", 5, 1.5, True)] + [
    {"column": "s", "op": "in", "value": ["a", 1, True]},
    {"column": "s", "op": "not in", "value": ["a", 2]},
    {"column": "s", "op": "is null"}, {"column": "s", "op": "is not null"}]


def trigger_args(sql: str) -> list[str]:
    arglist = sql.split("EXECUTE FUNCTION", 1)[1]
    return [m.group(0)[1:-1].replace("''", "'") for m in LITERAL.finditer(arglist)]


def generated() -> dict[str, str]:
    single, composite = pipeline(filter=FILTER), pipeline(key=["k1", "k2"], filter=FILTER)
    pieces = {"notify function": ddl.NOTIFY_BODY,
              "filter": filter_sql(single.source.filter, "n"),
              "source hash": source_hash_sql(["a", "b"], "src"),
              "stored hash": stored_hash_sql(["a", "b"], "f" * 16, "src")}
    for label, p in (("single", single), ("composite", composite)):
        query = scan_query(Target.of(p))
        pieces[f"scan first {label}"], pieces[f"scan next {label}"] = query.first, query.next
        for threshold in (None, 5):
            p2 = p.model_copy(update={"trigger": p.trigger.model_copy(
                update={"bulk_threshold": threshold})})
            for t in ddl.table_triggers([ddl.compile_pipeline(p2)]):
                for i, arg in enumerate(trigger_args(t.sql)[2:-1]):
                    pieces[f"{t.name} {label} {threshold} arg {i + 2}"] = arg
    return pieces


@pytest.mark.parametrize(("label", "sql"), list(generated().items()),
                         ids=list(generated()))
def test_generated_sql_resolves_nothing_through_the_search_path(label: str, sql: str) -> None:
    # The notify function's own `:=` and `format('… %s …')` are plpgsql syntax.
    assert unqualified(sql.replace(":=", " ")) == [], label


def test_the_scanner_finds_what_the_old_sql_had() -> None:
    old = ('to_jsonb(n."id") ; o."b" IS DISTINCT FROM n."b" ; x::text ; a || b ; '
           "encode(sha256(convert_to(x, 'UTF8')), 'hex'); col::text IN ('a')")
    found = unqualified(old)
    for part in ("call to_jsonb(", "call encode(", "call sha256(", "cast ::text",
                 "operator ||", "implicit = in IS DISTINCT", "implicit = in IN ("):
        assert part in found, found


def test_the_notify_function_pins_its_search_path() -> None:
    assert "SET search_path = pg_catalog, pg_temp AS" in ddl.notify_function_sql()
