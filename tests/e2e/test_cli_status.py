"""`v10r status` tells, per pipeline, whether it is applied and how far embedding is —
and says so in its exit code, so scripts and health checks can rely on it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

pytestmark = [pytest.mark.e2e]

SPEC = """\
name: notes
database: {dsn: "${DATABASE_URL}"}
source: {table: public.notes, columns: [body]}
embedding: {provider: local}
target: {index: none}
"""


def v10r(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "v10r", *args], env=env, capture_output=True,
                          text=True, timeout=120)


async def test_status_follows_a_pipeline_from_unapplied_to_in_sync(pg_dsn: str,
                                                                   tmp_path: Path) -> None:
    spec = tmp_path / "notes.yaml"
    spec.write_text(SPEC)
    env = {**os.environ, "DATABASE_URL": pg_dsn, "COLUMNS": "160"}
    db = await asyncpg.connect(pg_dsn)
    try:
        await db.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
        await db.execute("INSERT INTO notes SELECT g, 'note number ' || g FROM generate_series(1, 5) g")

        before = v10r("status", str(spec), "--format", "json", env=env)
        assert before.returncode == 3, before.stderr
        [report] = json.loads(before.stdout)
        assert (report["applied"], report["counts"]) == (False, None)
        assert "not applied" in report["problems"][0]

        assert v10r("apply", str(spec), env=env).returncode == 0
        pending = v10r("status", str(spec), "--format", "json", env=env)
        [report] = json.loads(pending.stdout)
        assert pending.returncode == 3
        assert report["counts"]["missing"] == 5 and report["counts"]["pending"] == 5

        listener = subprocess.Popen(
            [sys.executable, "-m", "v10r", "listen", str(spec), "--workers-in-process", "1"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(600):
                done = await db.fetchval("SELECT count(*) FROM notes WHERE body_embedding IS NOT NULL")
                if done == 5:
                    break
                await asyncio.sleep(0.1)
            await db.execute("UPDATE notes SET body = '' WHERE id = 5")
            for _ in range(600):
                if await db.fetchval("SELECT body_embedding_note FROM notes WHERE id = 5"):
                    break
                await asyncio.sleep(0.1)
        finally:
            listener.send_signal(signal.SIGTERM)
            listener.wait(timeout=60)

        synced = v10r("status", str(spec), env=env)
        assert synced.returncode == 0, synced.stdout + synced.stderr
        assert "in sync" in synced.stdout
        row = next(line for line in synced.stdout.splitlines() if "notes" in line and "│" in line)
        cells = [c.strip() for c in row.split("│")]
        # pipeline, table.column, model, state, rows, current, stale, missing, empty
        assert cells[5:10] == ["5", "5", "0", "0", "1"], row
    finally:
        await db.close()


def test_status_of_an_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    spec = tmp_path / "notes.yaml"
    spec.write_text(SPEC)
    env = {**os.environ, "DATABASE_URL": "postgresql://u:topsecret@127.0.0.1:1/db"}
    result = v10r("status", str(spec), env=env)
    assert result.returncode == 1
    assert "cannot connect to postgresql://u:****@127.0.0.1:1/db" in result.stderr
    assert "topsecret" not in result.stderr + result.stdout and "Traceback" not in result.stderr
