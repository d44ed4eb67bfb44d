"""`v10r worker` and `v10r dlq` as users run them: real processes, Redis, PostgreSQL and
an OpenAI-compatible HTTP server; crashes, dead letters and clear errors."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from tests.integration.work.conftest import create_table, make_pipeline, task_for
from tests.services.openai_server import OpenAIServer, Reply
from v10r.db import connect_dsn
from v10r.queues.redis import RedisQueue

pytestmark = [pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/15"


@dataclass
class Setup:
    name: str
    spec: Path
    env: dict[str, str]
    queue: RedisQueue
    db: asyncpg.Connection
    server: OpenAIServer


SPEC = """\
version: 1
name: {name}
database:
  dsn: ${{DATABASE_URL}}
source:
  table: public.docs
  columns: [body]
embedding:
  provider: custom
  base_url: {url}
  model: fake-model
  dimensions: 8
  max_retries: 0
  timeout_s: 30
queue:
  kind: redis
  max_attempts: 2
"""


@pytest.fixture
def http_server() -> Iterator[OpenAIServer]:
    with OpenAIServer(dimensions=8) as server:
        yield server


@pytest.fixture
async def setup(pg_dsn: str, tmp_path: Path, http_server: OpenAIServer) -> AsyncIterator[Setup]:
    name = f"e_{uuid.uuid4().hex[:10]}"
    spec = tmp_path / "pipeline.yaml"
    spec.write_text(SPEC.format(name=name, url=http_server.url))
    env = {**os.environ, "DATABASE_URL": pg_dsn, "V10R_REDIS_URL": REDIS_URL,
           "PYTHONPATH": str(ROOT), "COLUMNS": "250"}
    queue = RedisQueue(REDIS_URL, pipelines=[name])
    await queue.start()
    db = await connect_dsn(pg_dsn)
    pipeline = make_pipeline(name=name)
    await create_table(db, pipeline)
    try:
        yield Setup(name, spec, env, queue, db, http_server)
    finally:
        await db.close()
        await queue.drop(name)
        await queue.close()


async def seed(setup: Setup, count: int) -> None:
    await setup.db.execute("INSERT INTO docs (id, body) SELECT i, 'row ' || i "
                           f"FROM generate_series(1, {count}) i")
    pipeline = make_pipeline(name=setup.name)
    await setup.queue.publish(setup.name, [task_for(pipeline, i) for i in range(1, count + 1)])


async def start_cli(setup: Setup, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "v10r", *args, env=setup.env, cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def run_cli(setup: Setup, *args: str) -> tuple[int, str, str]:
    process = await start_cli(setup, *args)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def stop_cli(process: asyncio.subprocess.Process) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, err.decode()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


def embedded(setup: Setup, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        done = await setup.db.fetchval(
            "SELECT count(*) FROM docs WHERE body_embedding IS NOT NULL")
        return done >= count
    return check


async def test_a_killed_worker_mid_batch_loses_nothing(setup: Setup):
    await seed(setup, 50)
    setup.server.script(Reply.hang(60))  # the first worker's batch never comes back
    first = await start_cli(setup, "worker", str(setup.spec), "--reclaim-after", "0.3")

    async def requested() -> bool:
        return len(setup.server.requests) >= 1
    await eventually(requested)
    first.kill()
    await first.wait()
    assert await setup.db.fetchval("SELECT count(*) FROM docs "
                                   "WHERE body_embedding IS NOT NULL") == 0

    second = await start_cli(setup, "worker", str(setup.spec), "--reclaim-after", "0.3")
    try:
        await eventually(embedded(setup, 50))
    finally:
        code, err = await stop_cli(second)
    assert code == 0, err
    assert "50 processed" in err and "Traceback" not in err


async def test_dead_letters_are_listed_and_replayed_once_the_provider_recovers(setup: Setup):
    await seed(setup, 2)
    setup.server.always = Reply.error(500, "model is down")
    worker = await start_cli(setup, "worker", str(setup.spec))
    try:
        async def dead() -> bool:
            return len(await setup.queue.dead_letters(setup.name)) == 2
        await eventually(dead)

        code, out, err = await run_cli(setup, "dlq", "list", str(setup.spec), "--format", "json")
        assert code == 0, err
        letters = json.loads(out)
        assert sorted(d["row"] for d in letters) == [1, 2]
        assert all(d["attempts"] == 2 and "HTTP 500" in d["error"] for d in letters)

        code, out, _ = await run_cli(setup, "dlq", "list", str(setup.spec))
        assert code == 0 and "HTTP 500" in out and letters[0]["id"] in out

        setup.server.always = None
        code, out, _ = await run_cli(setup, "dlq", "replay", str(setup.spec),
                                     "--pipeline", setup.name, "--id", letters[0]["id"])
        assert code == 0 and f"{setup.name}: 1 task(s) replayed" in out
        code, out, _ = await run_cli(setup, "dlq", "replay", str(setup.spec))
        assert code == 0 and f"{setup.name}: 1 task(s) replayed" in out
        await eventually(embedded(setup, 2))
    finally:
        code, err = await stop_cli(worker)
    assert code == 0, err
    code, out, _ = await run_cli(setup, "dlq", "list", str(setup.spec))
    assert code == 0 and "no dead-lettered tasks" in out


async def test_an_unreachable_queue_is_a_clear_error(setup: Setup):
    setup.env["V10R_REDIS_URL"] = "redis://:s3cret-pass@127.0.0.1:1/0"
    code, out, err = await run_cli(setup, "worker", str(setup.spec))
    assert code == 1
    assert "cannot reach the redis broker" in err and "hint:" in err
    assert "s3cret-pass" not in err + out and "Traceback" not in err


async def test_an_unreachable_database_is_a_clear_error(setup: Setup):
    setup.env["DATABASE_URL"] = "postgresql://v10r:s3cret-pass@127.0.0.1:1/nope"
    code, out, err = await run_cli(setup, "worker", str(setup.spec))
    assert code == 1
    assert "cannot connect to" in err and "hint:" in err
    assert "s3cret-pass" not in err + out and "Traceback" not in err


async def test_an_unknown_pipeline_is_a_usage_error(setup: Setup):
    code, _, err = await run_cli(setup, "dlq", "list", str(setup.spec), "--pipeline", "nope")
    assert code == 2 and "no pipeline named 'nope'" in err
