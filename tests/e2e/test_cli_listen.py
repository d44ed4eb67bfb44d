"""`v10r listen` and `v10r backfill` as users run them: real processes, PostgreSQL,
Redis, and in-process workers with the local model."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from v10r.embedded.process import free_port
from v10r.queues.redis import RedisQueue
from v10r.reconcile import apply_pipelines
from v10r.spec.load import load_pipelines
from v10r.tasks import read_message

pytestmark = [pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/15"
PASSWORD = "s3cret-pw"
WAIT_S = 60.0

SPEC = """\
version: 1
name: {name}
database:
  dsn: ${{DATABASE_URL}}
source:
  table: public.{table}
  columns: [body]
embedding:
  provider: local
target:
  index: none
queue:
  kind: {queue}
"""


@dataclass
class Setup:
    name: str
    table: str
    spec: Path
    env: dict[str, str]
    db: asyncpg.Connection


async def make_setup(pg_dsn: str, tmp_path: Path, queue: str, *, apply: bool = True) -> Setup:
    name, table = f"e_{uuid.uuid4().hex[:10]}", f"docs_{uuid.uuid4().hex[:6]}"
    spec = tmp_path / "pipeline.yaml"
    spec.write_text(SPEC.format(name=name, table=table, queue=queue))
    db = await asyncpg.connect(pg_dsn)
    await db.execute(f'CREATE TABLE "{table}" (id bigint PRIMARY KEY, body text)')
    env = {**os.environ, "DATABASE_URL": pg_dsn, "V10R_REDIS_URL": REDIS_URL,
           "PYTHONPATH": str(ROOT), "COLUMNS": "250"}
    if apply:
        os.environ["DATABASE_URL"] = pg_dsn
        await apply_pipelines(load_pipelines([spec]))
    return Setup(name, table, spec, env, db)


@pytest.fixture
async def memory_setup(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Setup]:
    setup = await make_setup(pg_dsn, tmp_path, "memory")
    try:
        yield setup
    finally:
        await setup.db.close()


async def start_listen(setup: Setup, *args: str) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "v10r", "listen", str(setup.spec), *args, env=setup.env,
        cwd=str(ROOT), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stderr is not None
    async with asyncio.timeout(WAIT_S):  # readiness: the "listening" line
        while b"listening for" not in (line := await process.stderr.readline()):
            assert line, "v10r listen exited before listening"
    return process


async def run_cli(setup: Setup, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "v10r", *args, env=setup.env, cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), WAIT_S)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def stop(process: asyncio.subprocess.Process) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(process.communicate(), WAIT_S)
    assert process.returncode is not None
    return process.returncode, err.decode()


async def test_listen_with_in_process_workers_embeds_inserted_rows(memory_setup: Setup):
    setup = memory_setup
    await setup.db.execute(f'INSERT INTO "{setup.table}" SELECT i, \'before start \' || i '
                           "FROM generate_series(1, 5) i")
    process = await start_listen(setup, "--workers-in-process", "2")
    try:
        await setup.db.execute(f'INSERT INTO "{setup.table}" SELECT i, \'row \' || i '
                               "FROM generate_series(6, 25) i")
        async with asyncio.timeout(WAIT_S):
            while await setup.db.fetchval(f'SELECT count(*) FROM "{setup.table}" '
                                          "WHERE body_embedding IS NOT NULL") < 25:
                await asyncio.sleep(0.1)
    finally:
        code, err = await stop(process)
    assert code == 0, err
    dims = await setup.db.fetchval(f'SELECT vector_dims(body_embedding) FROM "{setup.table}" '
                                   "LIMIT 1")
    assert dims == 384


async def test_metrics_count_notifications_and_written_rows(memory_setup: Setup):
    setup = memory_setup
    port = free_port()
    process = await start_listen(setup, "--workers-in-process", "1", "--no-catchup",
                                 "--metrics-port", str(port))
    try:
        await setup.db.execute(f'INSERT INTO "{setup.table}" SELECT i, \'row \' || i '
                               "FROM generate_series(1, 7) i")
        async with httpx.AsyncClient() as client, asyncio.timeout(WAIT_S):
            while "v10r_worker_written_total{pipeline=" not in (text := await _metrics(
                    client, port)) or f'pipeline="{setup.name}"}} 7' not in text:
                await asyncio.sleep(0.1)
            missing = await client.get(f"http://127.0.0.1:{port}/")
    finally:
        code, err = await stop(process)
    assert code == 0, err
    assert "# TYPE v10r_listener_notifications_total counter" in text
    assert 'v10r_listener_notifications_total{database="default"} 7' in text
    assert f'v10r_worker_written_total{{pipeline="{setup.name}"}} 7' in text
    assert 'v10r_listener_paused{database="default"} 0' in text
    assert missing.status_code == 404


async def _metrics(client: httpx.AsyncClient, port: int) -> str:
    return (await client.get(f"http://127.0.0.1:{port}/metrics")).text


async def test_sigterm_stops_the_listener_cleanly(memory_setup: Setup):
    process = await start_listen(memory_setup, "--workers-in-process", "1", "--no-catchup")
    code, err = await stop(process)
    assert code == 0
    assert "Traceback" not in err
    assert "stopped" in err


async def test_listen_refuses_a_pipeline_that_is_not_applied(pg_dsn: str, tmp_path: Path):
    setup = await make_setup(pg_dsn, tmp_path, "memory", apply=False)
    try:
        code, _, err = await run_cli(setup, "listen", str(setup.spec), "--workers-in-process",
                                     "1")
    finally:
        await setup.db.close()
    assert code == 1
    assert setup.name in err and "v10r apply" in err
    assert "Traceback" not in err


async def test_an_unreachable_database_is_a_clear_error_without_the_password(
        memory_setup: Setup):
    env = {**memory_setup.env,
           "DATABASE_URL": f"postgresql://someone:{PASSWORD}@127.0.0.1:1/nowhere"}
    setup = Setup(memory_setup.name, memory_setup.table, memory_setup.spec, env,
                  memory_setup.db)
    code, _, err = await run_cli(setup, "listen", str(setup.spec))
    assert code == 1
    assert "cannot connect" in err and "****" in err
    assert PASSWORD not in err and "Traceback" not in err


async def test_backfill_enqueues_every_stale_row_on_redis(pg_dsn: str, tmp_path: Path):
    setup = await make_setup(pg_dsn, tmp_path, "redis")
    queue = RedisQueue(REDIS_URL, pipelines=[setup.name])
    await queue.start()
    try:
        await setup.db.execute(f'INSERT INTO "{setup.table}" SELECT i, \'x\' '
                               "FROM generate_series(1, 1200) i")
        code, out, err = await run_cli(setup, "backfill", str(setup.spec),
                                       "--pipeline", setup.name)
        assert code == 0, err
        assert f"{setup.name}: 1200 row(s) enqueued" in out
        entries = await queue.redis.xrange(f"v10r:tasks:{setup.name}:catchup")
        assert sum(len(read_message(f[b"task"])) for _, f in entries) == 1200
        assert len(entries) == 12  # batched: pages of 1000 rows, messages of 100
    finally:
        await queue.drop(setup.name)
        await queue.close()
        await setup.db.close()


async def test_backfill_of_a_memory_queue_is_a_usage_error(memory_setup: Setup):
    code, _, err = await run_cli(memory_setup, "backfill", str(memory_setup.spec))
    assert code == 2
    assert "--workers-in-process" in err
