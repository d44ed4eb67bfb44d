"""`v10r apply` never destroys without asking, and `--prune` stays inside its spec set:
the real CLI against real PostgreSQL + pgvector."""

from __future__ import annotations

import asyncio
import os
import pty
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.test_cli_plan_apply import SPEC, V10R, v10r

pytestmark = pytest.mark.e2e

IN_PLACE_DIMS = SPEC.replace("dimensions: 8", "dimensions: 16") + "target: {reembed: in_place}\n"
# (spec change, words every listing uses, how to tell it did not run)
DESTRUCTIVE = {
    "replace": (IN_PLACE_DIMS, ("replace column public.docs.body_embedding: vector(8) → "
                "vector(16)"), ("SELECT format_type(atttypid, atttypmod) = 'vector(8)' FROM "
                "pg_attribute WHERE attrelid = 'docs'::regclass AND attname = 'body_embedding'")),
    "drop index": (SPEC + "target: {index: none}\n", ("drop index "
                   "public.docs_body_embedding_hnsw (no longer wanted)"),
                   "SELECT to_regclass('docs_body_embedding_hnsw') IS NOT NULL"),
    "drop trigger": (SPEC + "trigger: {bulk_threshold: null}\n",
                     "drop trigger docs_bulk_notify_v10r on public.docs",
                     "SELECT count(*) = 1 FROM pg_trigger WHERE tgname = 'docs_bulk_notify_v10r'"),
}


@pytest.fixture
async def db(pg_dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(pg_dsn)
    await conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text);"
                       "INSERT INTO docs SELECT g, 'text ' || g FROM generate_series(1, 10) g")
    yield conn
    await conn.close()


@pytest.mark.parametrize("kind", sorted(DESTRUCTIVE))
async def test_each_destructive_kind_is_listed_by_plan_and_refused_without_a_terminal(
        kind: str, db: asyncpg.Connection, pg_dsn: str, tmp_path: Path) -> None:
    spec = tmp_path / "docs.yaml"
    spec.write_text(SPEC)
    assert (await v10r("apply", str(spec), dsn=pg_dsn))[0] == 0
    changed, words, unchanged = DESTRUCTIVE[kind]
    spec.write_text(changed)

    code, out, _ = await v10r("plan", str(spec), dsn=pg_dsn)
    assert code == 3 and "destructive operations" in out and f"  - {words}" in out
    code, out, err = await v10r("apply", str(spec), dsn=pg_dsn)
    assert code == 1 and f"  - {words}" in err and "--yes" in err and "nothing changed" in err
    assert await db.fetchval(unchanged)
    code, out, err = await v10r("apply", str(spec), "--yes", dsn=pg_dsn)
    assert code == 0, err
    assert not await db.fetchval(unchanged)


async def _apply_on_terminal(spec: Path, dsn: str, answer: bytes) -> tuple[int, str]:
    """`v10r apply` with a pseudo-terminal as stdin, answering the prompt."""
    primary, secondary = pty.openpty()
    env = {**os.environ, "DATABASE_URL": dsn, "NO_COLOR": "1", "COLUMNS": "200"}
    proc = await asyncio.create_subprocess_exec(
        V10R, "apply", str(spec), env=env, stdin=secondary, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    os.close(secondary)
    try:
        os.write(primary, answer)
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    finally:
        os.close(primary)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_a_terminal_is_asked_and_only_yes_runs(db: asyncpg.Connection, pg_dsn: str,
                                                     tmp_path: Path) -> None:
    spec = tmp_path / "docs.yaml"
    spec.write_text(SPEC)
    assert (await v10r("apply", str(spec), dsn=pg_dsn))[0] == 0
    changed, words, unchanged = DESTRUCTIVE["drop index"]
    spec.write_text(changed)
    code, out = await _apply_on_terminal(spec, pg_dsn, b"n\n")
    assert code == 1 and words in out and "Run them?" in out and "aborted" in out
    assert await db.fetchval(unchanged)
    code, out = await _apply_on_terminal(spec, pg_dsn, b"y\n")
    assert code == 0, out
    assert not await db.fetchval(unchanged)


async def test_prune_of_one_file_leaves_the_pipelines_of_other_files(
        db: asyncpg.Connection, pg_dsn: str, tmp_path: Path) -> None:
    await db.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
    one, other = tmp_path / "one.yaml", tmp_path / "other.yaml"
    one.write_text(SPEC)
    other.write_text(SPEC.replace("name: docs", "name: notes").replace("public.docs",
                                                                         "public.notes"))
    assert (await v10r("apply", str(tmp_path), dsn=pg_dsn))[0] == 0

    code, out, err = await v10r("apply", "--prune", "--drop-columns", "--yes", str(one),
                                dsn=pg_dsn)
    assert code == 0, err
    assert "belongs to another spec set" in out and "never pruned" in out
    assert await db.fetchval("SELECT count(*) FROM v10r.pipelines") == 2
    assert await db.fetchval("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'notes'::regclass"
                             ) == 2
    # Removed from its own directory, it is pruned (that directory is its spec set).
    other.unlink()
    code, out, err = await v10r("apply", "--prune", "--yes", str(tmp_path), dsn=pg_dsn)
    assert code == 0, err
    assert await db.fetchval("SELECT array_agg(name) FROM v10r.pipelines") == ["docs"]


async def test_a_pruned_pipeline_whose_columns_were_kept_is_re_adopted(
        db: asyncpg.Connection, pg_dsn: str, tmp_path: Path) -> None:
    spec, empty = tmp_path / "specs" / "docs.yaml", tmp_path / "specs" / "keep.yaml"
    spec.parent.mkdir()
    spec.write_text(SPEC)
    assert (await v10r("apply", str(spec.parent), dsn=pg_dsn))[0] == 0
    await db.execute("UPDATE docs SET body_embedding = array_fill(0.5, ARRAY[8])::vector")
    empty.write_text(SPEC.replace("name: docs", "name: keep") +
                     "target: {column: keep_embedding, index: none}\n")
    spec.rename(tmp_path / "docs.yaml")  # out of the spec set: pruned, columns kept
    code, out, err = await v10r("apply", "--prune", "--yes", str(empty.parent), dsn=pg_dsn)
    assert code == 0, err
    assert "columns kept: body_embedding" in out

    code, out, err = await v10r("apply", str(tmp_path / "docs.yaml"), dsn=pg_dsn)
    assert code == 0, err
    assert "add column public.docs.body_embedding " not in out
    assert await db.fetchval("SELECT count(*) FROM docs WHERE body_embedding IS NOT NULL") == 10
    assert (await v10r("plan", str(tmp_path / "docs.yaml"), dsn=pg_dsn))[0] == 0
