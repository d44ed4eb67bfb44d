"""`v10r plan --format markdown`: a pull-request comment, from the real CLI and database."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from tests.e2e import test_cli_plan_apply as plan_cli
from tests.e2e.test_cli_plan_apply import SPEC, v10r
from v10r.reconcile.render import _md

pytestmark = pytest.mark.e2e

spec = plan_cli.spec  # the table `docs` with 10 rows, and its spec file


async def test_a_new_pipeline_is_one_table_row_with_rows_tokens_and_cost(spec: Path,
                                                                        pg_dsn: str) -> None:
    code, out, err = await v10r("plan", str(spec), "--format", "markdown", dsn=pg_dsn)
    assert code == 3, err
    lines = out.splitlines()
    assert lines[0] == "### v10r plan"
    assert "| database | pipeline | table → column | action | rows to embed | tokens | cost |" \
        in lines
    assert ("| default | docs | public.docs → body\\_embedding | **create** | 10 | ~1,000 | "
            "~$0.0000 |") in lines
    assert "CAUTION" not in out
    assert "<details><summary>" in out and "add column public.docs.body\\_embedding vector(8)" \
        in out
    assert lines[-1].endswith("pending; `v10r apply` makes them.")
    assert "\x1b" not in out  # no terminal styling in a comment


async def test_destructive_operations_are_called_out(spec: Path, pg_dsn: str) -> None:
    two = spec.read_text() + "---\n" + SPEC.replace("name: docs", "name: second") + \
        "target: {column: second_embedding, index: none}\n"
    spec.write_text(two)
    assert (await v10r("apply", str(spec), dsn=pg_dsn))[0] == 0
    spec.write_text(SPEC)
    code, out, err = await v10r("plan", str(spec), "--prune", "--drop-columns", "--format",
                                "markdown", dsn=pg_dsn)
    assert code == 3, err
    caution = out[out.index("> [!CAUTION]"):out.index("<details>")]
    assert "destructive operation(s)" in caution and "--yes" in caution
    assert "> - drop column public.docs.second\\_embedding" in caution
    assert "- **destructive:** drop column public.docs.second\\_embedding" in out
    conn = await asyncpg.connect(pg_dsn)
    try:  # a plan changes nothing
        assert await conn.fetchval("SELECT count(*) FROM v10r.pipelines") == 2
    finally:
        await conn.close()


async def test_no_changes_say_so(spec: Path, pg_dsn: str) -> None:
    assert (await v10r("apply", str(spec), dsn=pg_dsn))[0] == 0
    code, out, _ = await v10r("plan", str(spec), "--format", "markdown", dsn=pg_dsn)
    assert code == 0
    assert out.rstrip().endswith("No changes: the databases match the specs.")
    assert "| default | docs |" in out and "**unchanged**" in out


@pytest.mark.parametrize("hostile", [
    "a|b", "<img src=x onerror=alert(1)>", "[click](http://evil)", "line\nbreak",
    "`code`", "**bold**", "\x1b[2Jclear", "a & b", "\\|",
])
def test_names_from_the_database_stay_inert_markdown(hostile: str) -> None:
    text = _md(hostile)
    assert "\n" not in text and "\x1b" not in text and "<" not in text
    for special in "|[]`*":
        assert text.count(special) == text.count("\\" + special)
