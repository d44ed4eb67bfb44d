"""`v10r worker` and `v10r dlq` as users run them: real processes, Redis, PostgreSQL and
an OpenAI-compatible HTTP server; crashes, dead letters and clear errors."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
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


async def test_a_killed_worker_mid_batch_is_taken_over_within_seconds(setup: Setup):
    await seed(setup, 50)
    setup.server.script(Reply.hang(60))  # the first worker's batch never comes back
    first = await start_cli(setup, "worker", str(setup.spec))
    second = None
    try:
        await eventually(requested(setup, 1))
        second = await start_cli(setup, "worker", str(setup.spec))  # live, finds no work
        await asyncio.sleep(1.0)
        assert await count_embedded(setup) == 0
        first.kill()  # SIGKILL mid-batch: no ack, no goodbye
        await first.wait()
        killed = time.monotonic()
        await eventually(embedded(setup, 50), timeout=10)  # liveness key expires after 3 s
        print(f"\ntaken over and written {time.monotonic() - killed:.1f}s after the kill")
    finally:
        if first.returncode is None:
            first.kill()
        code, err = await stop_cli(second) if second else (0, "")
    assert code == 0, err
    assert "50 processed" in err and "Traceback" not in err


async def test_a_live_slow_workers_batch_is_never_taken_over(setup: Setup):
    await seed(setup, 20)
    setup.server.script(Reply.hang(6))  # slower than the 3 s liveness window
    first = await start_cli(setup, "worker", str(setup.spec))
    await eventually(requested(setup, 1))
    second = await start_cli(setup, "worker", str(setup.spec))
    try:
        await eventually(embedded(setup, 20), timeout=30)
        await asyncio.sleep(2.0)  # a takeover would show as a second request for the rows
    finally:
        code1, err1 = await stop_cli(first)
        code2, err2 = await stop_cli(second)
    assert (code1, code2) == (0, 0), err1 + err2
    embedded_texts = [t for r in setup.server.requests for t in r.texts]
    assert sorted(embedded_texts) == sorted(f"row {i}" for i in range(1, 21))
    assert "20 processed" in err1 and "0 processed" in err2


def requested(setup: Setup, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(setup.server.requests) >= count
    return check


async def count_embedded(setup: Setup) -> int:
    return await setup.db.fetchval("SELECT count(*) FROM docs WHERE body_embedding IS NOT NULL")


async def test_dead_letters_are_listed_and_replayed_once_the_input_is_accepted(setup: Setup):
    await seed(setup, 2)
    setup.server.always = Reply.error(400, "input rejected by the model")
    worker = await start_cli(setup, "worker", str(setup.spec))
    try:
        async def dead() -> bool:
            return len(await setup.queue.dead_letters(setup.name)) == 2
        await eventually(dead)

        code, out, err = await run_cli(setup, "dlq", "list", str(setup.spec), "--format", "json")
        assert code == 0, err
        letters = json.loads(out)
        assert sorted(d["row"] for d in letters) == [1, 2]
        assert all(d["attempts"] == 1 and "HTTP 400" in d["error"] for d in letters)

        code, out, _ = await run_cli(setup, "dlq", "list", str(setup.spec))
        assert code == 0 and "HTTP 400" in out and letters[0]["id"] in out

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
    [line] = [x for x in err.splitlines() if "dead-lettered 2 task(s)" in x]
    assert setup.name in line and "[rows 1, 2]" in line and "HTTP 400" in line
    code, out, _ = await run_cli(setup, "dlq", "list", str(setup.spec))
    assert code == 0 and "no dead-lettered tasks" in out


@pytest.mark.parametrize("reply", [Reply.unauthorized(), Reply.error(403, "forbidden")],
                         ids=["401", "403"])
async def test_rejected_credentials_pause_loudly_and_dead_letter_nothing(setup: Setup, reply):
    await seed(setup, 5)
    setup.server.always = reply
    worker = await start_cli(setup, "worker", str(setup.spec))
    try:
        await eventually(requested(setup, 3))  # the batch, then probes
        assert await setup.queue.dead_letters(setup.name) == []
        assert await count_embedded(setup) == 0 and worker.returncode is None
        setup.server.always = None  # the provider accepts the key again
        await eventually(embedded(setup, 5))
    finally:
        code, err = await stop_cli(worker)
    assert code == 0, err
    paused = [line for line in err.splitlines() if "paused:" in line]
    assert len(paused) == 1 and "rejected the credentials" in paused[0]
    assert "api_key" in paused[0] and "Traceback" not in err
    assert await setup.queue.dead_letters(setup.name) == []


async def test_dlq_of_a_memory_queue_says_where_its_dead_letters_are(setup: Setup,
                                                                     tmp_path: Path):
    spec = tmp_path / "memory.yaml"
    spec.write_text(setup.spec.read_text().replace("kind: redis", "kind: memory"))
    for command in ("list", "replay"):
        code, out, err = await run_cli(setup, "dlq", command, str(spec))
        assert code == 1 and "no dead-lettered tasks" not in out
        assert "memory queue" in err and "catch-up scan" in err and "redis" in err
    code, out, err = await run_cli(setup, "dlq", "list", str(setup.spec), "--queue", "memory")
    assert code == 1 and "memory queue" in err


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


async def test_a_key_variable_ending_in_a_newline_stops_the_worker_with_the_field_not_the_key(
        setup: Setup):
    setup.spec.write_text(setup.spec.read_text().replace(
        "  model: fake-model", "  model: fake-model\n  api_key: ${V10R_TEST_API_KEY}"))
    setup.env["V10R_TEST_API_KEY"] = "sk-from-a-file-0123456789\n"
    code, out, err = await run_cli(setup, "worker", str(setup.spec))
    assert code == 1, err
    assert "api_key" in err and "control character" in err and "hint:" in err
    assert "sk-from-a-file" not in err + out and "Traceback" not in err
    assert not setup.server.requests
