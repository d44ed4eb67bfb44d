"""`v10r plan` and `v10r apply` as users run them: the real CLI against real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import asyncpg
import pytest

pytestmark = pytest.mark.e2e

V10R = str(Path(sys.executable).with_name("v10r"))
SPEC = """\
version: 1
name: docs
source: {table: public.docs, key: id, columns: [body]}
embedding: {provider: openai, model: m, dimensions: 8, api_key: "${OPENAI_API_KEY}",
            price_per_million_tokens: 0.02}
"""


async def v10r(*args: str, dsn: str, stdin: bytes = b"") -> tuple[int, str, str]:
    env = {**os.environ, "DATABASE_URL": dsn, "NO_COLOR": "1", "COLUMNS": "200"}
    proc = await asyncio.create_subprocess_exec(
        V10R, *args, env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def spec(tmp_path: Path, pg_dsn: str) -> Path:
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text);"
                           "INSERT INTO docs SELECT g, repeat('x', 400) FROM generate_series(1, 10) g")
    finally:
        await conn.close()
    path = tmp_path / "docs.yaml"
    path.write_text(SPEC)
    return path


async def test_plan_shows_pending_changes_with_exit_code_3(spec: Path, pg_dsn: str) -> None:
    code, out, err = await v10r("plan", str(spec), dsn=pg_dsn)
    assert code == 3, err
    assert "create" in out and "pipeline docs" in out
    assert "10 row(s) to embed, ~1,000 tokens" in out
    assert "add column public.docs.body_embedding vector(8)" in out
    assert "build HNSW index" in out


async def test_apply_then_plan_has_no_changes(spec: Path, pg_dsn: str) -> None:
    code, out, err = await v10r("apply", str(spec), dsn=pg_dsn)
    assert code == 0, err
    assert "applied" in out
    code, out, _ = await v10r("plan", str(spec), dsn=pg_dsn)
    assert code == 0 and "no changes" in out
    code, out, _ = await v10r("apply", str(spec), dsn=pg_dsn)
    assert code == 0 and "nothing to do" in out


async def test_plan_json_lists_operations_with_sql(spec: Path, pg_dsn: str) -> None:
    code, out, _ = await v10r("plan", str(spec), "--format", "json", dsn=pg_dsn)
    assert code == 3
    data = json.loads(out)
    assert data["changes"] is True
    [database] = data["databases"]
    assert database["pipelines"][0]["rows_to_embed"] == 10
    assert database["pipelines"][0]["cost_usd"] == pytest.approx(1000 / 1e6 * 0.02)
    kinds = [op["kind"] for op in database["operations"]]
    assert kinds[:2] == ["CreateSchema", "CreateFunction"] and "CreateIndex" in kinds
    index = next(op for op in database["operations"] if op["kind"] == "CreateIndex")
    assert index["transactional"] is False and "CONCURRENTLY" in index["sql"][0]


async def test_user_errors_exit_1_with_a_hint_and_no_traceback(spec: Path, pg_dsn: str,
                                                               tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC.replace("public.docs", "public.nope").replace("name: docs", "name: nope"))
    code, out, err = await v10r("plan", str(bad), dsn=pg_dsn)
    assert code == 1
    assert "table public.nope does not exist" in err and "hint:" in err
    assert "Traceback" not in err + out


async def test_unreachable_database_masks_the_password(spec: Path) -> None:
    dsn = "postgresql://v10r:s3cret-pw@127.0.0.1:1/app"
    code, out, err = await v10r("apply", str(spec), dsn=dsn)
    assert code == 1
    assert "s3cret-pw" not in err + out and "****" in err and "Traceback" not in err


@pytest.mark.parametrize("args", [("--format", "xml"), ("--no-such-option",)])
async def test_usage_errors_exit_2_which_no_plan_outcome_uses(spec: Path, pg_dsn: str,
                                                             args: tuple[str, ...]) -> None:
    code, _, err = await v10r("plan", str(spec), *args, dsn=pg_dsn)
    assert code == 2 and "Usage:" in err
    assert (await v10r("plan", str(spec), dsn=pg_dsn))[0] == 3  # changes pending
    assert (await v10r("apply", str(spec), dsn=pg_dsn))[0] == 0
    assert (await v10r("plan", str(spec), dsn=pg_dsn))[0] == 0  # no changes


async def test_prune_with_drop_columns_needs_confirmation(spec: Path, pg_dsn: str) -> None:
    two = spec.read_text() + "---\n" + SPEC.replace("name: docs", "name: second") + \
        "target: {column: second_embedding, index: none}\n"
    spec.write_text(two)
    assert (await v10r("apply", str(spec), dsn=pg_dsn))[0] == 0
    spec.write_text(SPEC)  # `second` removed from the file
    code, out, err = await v10r("apply", str(spec), "--prune", "--drop-columns", dsn=pg_dsn)
    assert code == 1 and "drop column public.docs.second_embedding" in err and "--yes" in err
    assert "nothing changed" in err
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM v10r.pipelines") == 2
        code, out, err = await v10r("apply", str(spec), "--prune", "--drop-columns", "--yes",
                                    dsn=pg_dsn)
        assert code == 0, err
        assert "drop column public.docs.second_embedding" in out
        assert await conn.fetchval("SELECT count(*) FROM v10r.pipelines") == 1
    finally:
        await conn.close()
