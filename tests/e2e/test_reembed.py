"""Changes that invalidate vectors, as users make them: edit the spec, `v10r apply`, let
`v10r listen --workers-in-process` re-embed, `v10r apply` again to cut over. Proves that
every row ends current and that the column queries read never shows a NULL vector on
the way (blue/green), and that every count is honest (in place)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

from tests.services.openai_server import OpenAIServer

pytestmark = [pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
ROWS = 120
WAIT_S = 90.0

# change kind -> (spec edit, the type of the column queries read afterwards)
CHANGES: dict[str, tuple[dict[str, Any], str]] = {
    "type": ({"target": {"type": "halfvec"}}, "halfvec(8)"),
    "dims": ({"embedding": {"dimensions": 16}}, "vector(16)"),
    "model": ({"embedding": {"model": "m2"}}, "vector(8)"),
    "preprocessing": ({"preprocess": {"max_chars": 7}}, "vector(8)"),
    "template": ({"source": {"template": "doc: {body}"}}, "vector(8)"),
}


def merge(base: dict[str, Any], edit: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in edit.items():
        out[key] = merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return out


@dataclass
class Setup:
    spec: Path
    base: dict[str, Any]
    env: dict[str, str]
    db: asyncpg.Connection

    def write(self, edit: dict[str, Any] | None = None) -> None:
        self.spec.write_text(yaml.safe_dump(merge(self.base, edit or {})))

    async def cli(self, *args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "v10r", *args, env=self.env, cwd=str(ROOT),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), WAIT_S)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def fill(self, done_sql: str) -> None:
        """Run the listener with in-process workers until `done_sql` is true."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "v10r", "listen", str(self.spec), "--workers-in-process", "2",
            env=self.env, cwd=str(ROOT), stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        try:
            async with asyncio.timeout(WAIT_S):
                while not await self.db.fetchval(done_sql):
                    await asyncio.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), WAIT_S)
        assert proc.returncode == 0, err.decode()[-2000:]

    async def status(self) -> tuple[int, dict[str, Any]]:
        code, out, err = await self.cli("status", str(self.spec), "--format", "json")
        assert code in (0, 3), err
        return code, json.loads(out)[0]


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(dimensions=8) as s:
        yield s


@pytest.fixture
async def setup(pg_dsn: str, tmp_path: Path, server: OpenAIServer) -> AsyncIterator[Setup]:
    db = await asyncpg.connect(pg_dsn)
    await db.execute("CREATE TABLE docs (id bigint PRIMARY KEY, body text);"
                     f"INSERT INTO docs SELECT g, 'document number ' || g "
                     f"FROM generate_series(1, {ROWS}) g")
    base = {"name": f"p_{uuid.uuid4().hex[:8]}", "database": {"dsn": "${DATABASE_URL}"},
            "source": {"table": "public.docs", "columns": ["body"]},
            "embedding": {"provider": "custom", "base_url": server.url, "model": "m1",
                          "dimensions": 8, "send_dimensions": True, "batch_size": 32},
            "target": {}, "queue": {"kind": "memory"}}
    env = {**os.environ, "DATABASE_URL": pg_dsn, "PYTHONPATH": str(ROOT), "COLUMNS": "250",
           "NO_COLOR": "1"}
    s = Setup(tmp_path / "docs.yaml", base, env, db)
    s.write()
    code, _, err = await s.cli("apply", str(s.spec))
    assert code == 0, err
    await s.fill("SELECT count(*) = 0 FROM docs WHERE body_embedding IS NULL")
    try:
        yield s
    finally:
        await db.close()


class NullWatch:
    """Polls the column queries read, from its own connection, for NULL vectors."""

    def __init__(self, dsn: str, column: str) -> None:
        self.dsn, self.column, self.worst, self.polls = dsn, column, 0, 0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            while not self._stop.is_set():
                try:
                    nulls = await conn.fetchval(
                        f'SELECT count(*) FROM docs WHERE "{self.column}" IS NULL')
                except asyncpg.UndefinedColumnError:  # only inside the swap: never seen
                    nulls = ROWS
                self.worst, self.polls = max(self.worst, nulls), self.polls + 1
                await asyncio.sleep(0.02)
        finally:
            await conn.close()

    def stop(self) -> None:
        self._stop.set()


@pytest.mark.parametrize("kind", sorted(CHANGES))
async def test_blue_green_re_embedding_never_shows_a_null_vector(kind: str, setup: Setup,
                                                                 pg_dsn: str) -> None:
    edit, final_type = CHANGES[kind]
    watch = NullWatch(pg_dsn, "body_embedding")
    watcher = asyncio.create_task(watch.run())
    try:
        setup.write(edit)
        code, out, err = await setup.cli("plan", str(setup.spec))
        assert code == 3 and f"{ROWS} row(s) to embed" in out, out + err
        assert "cut over" in out and "destructive" not in out
        code, out, err = await setup.cli("apply", str(setup.spec))  # no --yes needed
        assert code == 0, err
        code, report = await setup.status()
        assert code == 3 and report["reembedding"]["done"] == 0
        assert report["reembedding"]["total"] == ROWS and report["column"] == "body_embedding"

        await setup.db.execute("UPDATE docs SET body = 'changed meanwhile' WHERE id = 1")
        await setup.fill("SELECT count(*) = 0 FROM docs WHERE body_embedding_v10r_next_hash "
                         "IS NULL")
        code, report = await setup.status()
        assert report["reembedding"] == {"column": "body_embedding_v10r_next", "done": ROWS,
                                         "total": ROWS, "complete": True, "eta_s": None}
        code, out, err = await setup.cli("apply", str(setup.spec))
        assert code == 0, err
        assert "cut over public.docs.body_embedding" in out
    finally:
        watch.stop()
        await watcher
    assert watch.polls > 10 and watch.worst == 0  # queries always had a vector
    code, report = await setup.status()
    assert code == 0 and report["counts"]["current"] == ROWS and not report["reembedding"]
    assert (await setup.cli("plan", str(setup.spec)))[0] == 0
    assert await setup.db.fetchval(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
        "'docs'::regclass AND attname = 'body_embedding'") == final_type
    assert await setup.db.fetchval("SELECT to_regclass('docs_body_embedding_hnsw') IS NOT NULL")
    # The old vectors stay until asked for; dropping them is confirmed.
    assert await setup.db.fetchval("SELECT count(*) FROM docs WHERE body_embedding_v10r_old "
                                   "IS NOT NULL") == ROWS
    code, _, err = await setup.cli("apply", str(setup.spec), "--drop-columns")
    assert code == 1 and "drop column public.docs.body_embedding_v10r_old" in err
    code, _, err = await setup.cli("apply", str(setup.spec), "--drop-columns", "--yes")
    assert code == 0, err
    assert (await setup.cli("plan", str(setup.spec), "--drop-columns"))[0] == 0


async def test_a_renamed_column_keeps_its_vectors(setup: Setup, pg_dsn: str) -> None:
    setup.write({"target": {"column": "vec"}})
    code, out, err = await setup.cli("plan", str(setup.spec))
    assert code == 3 and "0 row(s) to embed" in out, out + err
    code, out, err = await setup.cli("apply", str(setup.spec))
    assert code == 0, err
    assert await setup.db.fetchval("SELECT count(*) FROM docs WHERE vec IS NULL") == 0
    code, report = await setup.status()
    assert code == 0 and report["counts"]["current"] == ROWS
    assert await setup.db.fetchval("SELECT to_regclass('docs_vec_hnsw') IS NOT NULL")


@pytest.mark.parametrize("edits", [
    [{"embedding": {"dimensions": 16}}],
    [{"target": {"type": "halfvec"}}],
    [{"embedding": {"dimensions": 16}}, {}],  # 8 → 16 → 8 with no worker in between
])
async def test_in_place_re_embedding_counts_every_row(edits: list[dict[str, Any]],
                                                      setup: Setup) -> None:
    for edit in edits:
        setup.write(merge(edit, {"target": {"reembed": "in_place"}}))
        code, out, err = await setup.cli("apply", str(setup.spec), "--yes")
        assert code == 0, err
    code, out, err = await setup.cli("plan", str(setup.spec))
    assert code == 0 and f"{ROWS} row(s) to embed" in out, out + err
    code, report = await setup.status()
    assert code == 3 and report["counts"]["pending"] == ROWS  # never "in sync" without vectors
    await setup.fill("SELECT count(*) = 0 FROM docs WHERE body_embedding IS NULL")
    code, report = await setup.status()
    assert code == 0 and report["counts"]["current"] == ROWS


async def test_a_large_tables_index_is_built_after_the_initial_fill(setup: Setup) -> None:
    await setup.db.execute("ANALYZE docs")
    setup.env["V10R_INDEX_AFTER_ROWS"] = str(ROWS // 2)
    second = merge(setup.base, {"name": setup.base["name"] + "_2", "target": {"column": "second"}})
    setup.spec.write_text(yaml.safe_dump_all([setup.base, second]))
    code, out, err = await setup.cli("apply", str(setup.spec))
    assert code == 0, err
    assert "build HNSW index docs_second_hnsw" not in out
    assert await setup.db.fetchval("SELECT to_regclass('docs_second_hnsw')") is None
    code, out, err = await setup.cli("status", str(setup.spec))
    assert "docs_second_hnsw is not built yet" in out, out + err

    await setup.fill("SELECT count(*) = 0 FROM docs WHERE second IS NULL")
    code, out, err = await setup.cli("apply", str(setup.spec))
    assert code == 0 and "build HNSW index docs_second_hnsw" in out, out + err
    assert await setup.db.fetchval("SELECT indisvalid FROM pg_index "
                                   "WHERE indexrelid = 'docs_second_hnsw'::regclass")
    assert (await setup.cli("status", str(setup.spec)))[0] == 0


async def test_a_listener_running_through_the_cutover_follows_the_swapped_columns(
        setup: Setup) -> None:
    """No restart needed: after `apply` cuts over, the running listener's workers and its
    catch-up scans write and read the columns under their new names."""
    setup.write(CHANGES["model"][0])
    assert (await setup.cli("apply", str(setup.spec)))[0] == 0
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "v10r", "listen", str(setup.spec), "--workers-in-process", "2",
        "--catchup-interval", "1", env=setup.env, cwd=str(ROOT),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(WAIT_S):
            while await setup.db.fetchval("SELECT count(*) FROM docs "
                                          "WHERE body_embedding_v10r_next_hash IS NULL"):
                await asyncio.sleep(0.2)
        code, out, err = await setup.cli("apply", str(setup.spec))
        assert code == 0 and "cut over public.docs.body_embedding" in out, out + err
        # a live change (notification) and a row loaded with triggers off (catch-up scan)
        await setup.db.execute("UPDATE docs SET body = 'after the cutover' WHERE id = 1")
        await setup.db.execute("SET session_replication_role = replica; "
                               "INSERT INTO docs VALUES (100000, 'loaded quietly'); "
                               "SET session_replication_role = DEFAULT")
        async with asyncio.timeout(WAIT_S):
            while True:
                code, report = await setup.status()
                if code == 0:
                    break
                await asyncio.sleep(0.5)
        assert report["counts"]["current"] == ROWS + 1 and not report["reembedding"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), WAIT_S)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert "Traceback" not in err.decode()
