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
                          text=True, check=False, timeout=120)


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

        listener = subprocess.Popen(  # noqa: ASYNC220 - starting it does not block; stopped below
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
        row = next(line for line in synced.stdout.splitlines() if line.startswith("notes "))
        # pipeline, state, rows, current, stale, missing; then the details
        assert row.split() == ["notes", "in", "sync", "5", "5", "0", "0"], row
        assert "1 empty" in synced.stdout and "public.notes.body_embedding" in synced.stdout
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


REDIS_URL = "redis://127.0.0.1:6379/15"
LONG_NAME = "customer_support_tickets_" + "x" * 22  # 47 of the 48 allowed
REDIS_SPEC = f"""\
version: 1
name: {LONG_NAME}
database: {{dsn: "${{DATABASE_URL}}"}}
source: {{table: public.tickets, columns: [body]}}
embedding: {{provider: local}}
target: {{index: none}}
queue: {{kind: redis}}
"""


async def spawn(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "v10r", *args, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)


async def finish(process: asyncio.subprocess.Process) -> tuple[str, str]:
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return out.decode(), err.decode()


async def sampling(pg_dsn: str, application: str, timeout: float = 60.0) -> None:
    """Until a session of `application` is seen in pg_stat_activity."""
    db = await asyncpg.connect(pg_dsn)
    try:
        async with asyncio.timeout(timeout):
            while not await db.fetchval("SELECT count(*) FROM pg_stat_activity "
                                        "WHERE application_name = $1", application):
                await asyncio.sleep(0.01)
    finally:
        await db.close()


async def _tickets(pg_dsn: str, tmp_path: Path, rows: int) -> tuple[Path, dict[str, str]]:
    spec = tmp_path / "tickets.yaml"
    spec.write_text(REDIS_SPEC)
    env = {**os.environ, "DATABASE_URL": pg_dsn, "V10R_REDIS_URL": REDIS_URL, "COLUMNS": "80"}
    db = await asyncpg.connect(pg_dsn)
    try:
        await db.execute("CREATE TABLE tickets (id int PRIMARY KEY, body text)")
        await db.execute("INSERT INTO tickets SELECT g, 'ticket ' || g "
                         f"FROM generate_series(1, {rows}) g")
    finally:
        await db.close()
    assert v10r("apply", str(spec), env=env).returncode == 0
    return spec, env


async def test_status_fits_80_columns_and_says_no_worker_when_none_consumes(
        pg_dsn: str, tmp_path: Path) -> None:
    spec, env = await _tickets(pg_dsn, tmp_path, 1_234_567 // 100)
    result = v10r("status", str(spec), env=env)
    assert result.returncode == 3, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), result.stdout
    row = next(line for line in lines if "12,345" in line)
    assert row.split()[-4:] == ["12,345", "0", "0", "12,345"], result.stdout
    assert "stale (no worker?)" in result.stdout and "embedding " not in row
    assert "queue redis: " in result.stdout and "0 worker(s) seen" in result.stdout
    [report] = json.loads(v10r("status", str(spec), "--format", "json", env=env).stdout)
    assert report["queue_depth"]["consumers"] == 0 and report["queue"] == "redis"


async def test_watch_shows_rate_and_embedding_once_a_worker_consumes(
        pg_dsn: str, tmp_path: Path) -> None:
    spec, env = await _tickets(pg_dsn, tmp_path, 300)
    watch = await spawn(env, "status", str(spec), "--watch", "--interval", "0.3",
                        "--format", "json")
    listener = await spawn(env, "listen", str(spec), "--workers-in-process", "1",
                           "--queue", "redis")
    db = await asyncpg.connect(pg_dsn)
    try:
        for _ in range(900):
            if await db.fetchval("SELECT count(*) FROM tickets WHERE body_embedding IS NULL") == 0:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # a few more samples after the last write
    finally:
        await db.close()
        listener.send_signal(signal.SIGTERM)
        await asyncio.wait_for(listener.communicate(), 60)
        watch.send_signal(signal.SIGINT)
        out, err = await finish(watch)
    assert watch.returncode == 0, err
    samples = [json.loads(line)[0] for line in out.splitlines() if line.startswith("[")]
    assert len(samples) >= 3
    assert samples[-1]["counts"]["pending"] == 0
    assert any(s["rate_per_s"] for s in samples)
    assert all(s["rate_per_s"] is None or s["rate_per_s"] >= 0 for s in samples)
    assert "Traceback" not in err


async def test_watch_renders_frames_at_80_columns(pg_dsn: str, tmp_path: Path) -> None:
    spec, env = await _tickets(pg_dsn, tmp_path, 270)
    watch = await spawn(env, "status", str(spec), "--watch", "--interval", "0.2")
    await sampling(pg_dsn, "v10r status")  # however long start-up takes on a busy machine
    await asyncio.sleep(1.0)  # a few frames
    watch.send_signal(signal.SIGINT)
    out, err = await finish(watch)
    assert watch.returncode == 3, err  # rows pending: the last frame's verdict
    assert "Traceback" not in err
    frame = out.splitlines()
    assert all(len(line) <= 80 for line in frame), out
    assert any(line.split()[-4:] == ["270", "0", "0", "270"] for line in frame), out
    assert "stale (no worker?)" in out and "rows/s" in out
