"""`v10r listen` with in-process workers, as users run it, against a role that forges
notifications and rows whose keys lose precision as floats: every real row is written
once, nothing is dead-lettered, nothing stays stale, and no forged text reaches the log."""

# ruff: noqa: F811 - fixtures imported from tests.fixtures.providers
from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.e2e.test_cli_listen import WAIT_S, Setup, run_cli, start_listen, stop
from tests.fixtures.providers import openai_server  # noqa: F401 - fixture
from tests.fixtures.roles import login_role
from tests.services.openai_server import OpenAIServer
from v10r.db import connect_dsn
from v10r.embedded.process import free_port
from v10r.providers.deterministic import deterministic_vector
from v10r.reconcile import apply_pipelines
from v10r.spec.load import load_pipelines

pytestmark = [pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]

SPEC = """\
version: 1
name: {name}
database:
  dsn: ${{DATABASE_URL}}
source:
  table: public.{table}
  columns: [body]
embedding:
  provider: custom
  base_url: {url}
  model: test-model
  dimensions: 8
  max_retries: 0
target:
  index: none
queue:
  kind: memory
  max_attempts: 2
"""

KEYS = ["12345678901234567890.5", "9007199254740993", "0.1", "-1.000000000000000000001"]
FORGED = ['{"id": "x1", "table": "public.%s"}', '{"id": [1], "table": "public.%s"}',
          '{"id": {"id": 1}, "table": "public.%s"}', '{"id": null, "table": "public.%s"}',
          '{"table": "public.%s"}', '{"id": 1, "table": "public.elsewhere"}',
          '{"id": "\x1b[2J\x1b]0;pwned\x07", "table": "public.%s"}', "[" * 3000 + "]" * 3000,
          "\x1b[31mnot json"]


@pytest.fixture
async def setup(pg_dsn: str, tmp_path: Path,
                openai_server: OpenAIServer) -> AsyncIterator[Setup]:
    openai_server.dimensions = 8
    name, table = f"u_{uuid.uuid4().hex[:10]}", f"docs_{uuid.uuid4().hex[:6]}"
    spec = tmp_path / "pipeline.yaml"
    spec.write_text(SPEC.format(name=name, table=table, url=openai_server.url))
    db = await connect_dsn(pg_dsn)
    await db.execute(f'CREATE TABLE "{table}" (id numeric PRIMARY KEY, body text)')
    os.environ["DATABASE_URL"] = pg_dsn
    await apply_pipelines(load_pipelines([spec]))
    env = {**os.environ, "DATABASE_URL": pg_dsn, "PYTHONPATH": str(ROOT), "COLUMNS": "250"}
    try:
        yield Setup(name, table, spec, env, db)
    finally:
        await db.close()


@pytest.fixture
async def forger(setup: Setup) -> AsyncIterator[asyncpg.Connection]:
    """A role that may only connect: all it can do to v10r is NOTIFY."""
    async with login_role(setup.db) as conn:
        yield conn


async def test_forged_notifications_and_exact_keys_through_the_cli(
        setup: Setup, forger: asyncpg.Connection) -> None:
    port = free_port()
    channel = f"v10r_{setup.table}"
    process = await start_listen(setup, "--workers-in-process", "1", "--metrics-port", str(port))
    try:
        for i, key in enumerate(KEYS):
            for payload in FORGED:
                text = payload % setup.table if "%s" in payload else payload
                await forger.execute("SELECT pg_notify($1, $2)", channel, text)
            await setup.db.execute(f'INSERT INTO "{setup.table}" VALUES ($1::numeric, $2)',
                                   key, f"row {i}")
        async with asyncio.timeout(WAIT_S):
            while await setup.db.fetchval(f'SELECT count(*) FROM "{setup.table}" '
                                          "WHERE body_embedding IS NOT NULL") < len(KEYS):
                await asyncio.sleep(0.1)
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        code, out, err = await run_cli(setup, "status", str(setup.spec), "--format", "json")
    finally:
        listen_code, listen_err = await stop(process)
    assert listen_code == 0, listen_err
    assert code == 0, err  # nothing stale: no key is re-enqueued forever
    assert float(_sample(metrics, "v10r_listener_bad_payloads_total").split()[-1]) == (
        len(KEYS) * len(FORGED))
    assert float(_sample(metrics, "v10r_worker_dead_lettered_total").split()[-1]) == 0
    assert "Traceback" not in listen_err and "\x1b" not in listen_err
    assert "that v10r's trigger did not send" in listen_err
    for row in await setup.db.fetch(f'SELECT body, body_embedding FROM "{setup.table}"'):
        assert abs(row["body_embedding"].to_numpy()
                   - deterministic_vector(row["body"], 8)).max() < 1e-3
    assert json.loads(out)


def _sample(metrics: str, name: str) -> str:
    return next(line for line in metrics.splitlines() if line.startswith(name + "{"))
