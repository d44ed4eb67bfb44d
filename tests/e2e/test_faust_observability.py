"""The Faust worker logs and serves metrics like `v10r worker`: JSON logs with a line per
batch from `$V10R_LOG_FORMAT`, `/metrics`, `/healthz` and `/readyz` on
`$V10R_METRICS_PORT` (real broker, PostgreSQL and OpenAI-compatible server)."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.e2e import test_faust_worker as faust_cli
from tests.e2e.test_faust_worker import Setup, insert
from tests.fixtures.queues import kafka_broker  # noqa: F401
from tests.integration.faust.helpers import wait_for
from v10r.embedded.process import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

setup, openai_server = faust_cli.setup, faust_cli.openai_server


async def get(port: int, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(f"http://127.0.0.1:{port}{path}")


async def test_faust_worker_json_logs_metrics_and_readiness(setup: Setup) -> None:
    port = free_port()
    setup.env.update({"V10R_METRICS_PORT": str(port), "V10R_LOG_FORMAT": "json"})
    await insert(setup, range(1, 41))
    worker = setup.worker()
    try:
        await setup.publish(range(1, 41))

        async def embedded() -> bool:
            return await setup.count_embedded() == 40
        await wait_for(embedded, 90, "40 rows embedded", worker)
        name = setup.pipeline.name

        async def counted() -> bool:
            text = (await get(port, "/metrics")).text
            return f'v10r_queue_waiting{{pipeline="{name}",queue="kafka"}}' in text
        await wait_for(counted, 60, "queue depth sampled", worker)
        metrics = (await get(port, "/metrics")).text
        health, ready = await get(port, "/healthz"), await get(port, "/readyz")
    finally:
        worker.stop()
    log = worker.log()
    assert "Traceback" not in log, log[-3000:]
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    batches = [e for e in events if e.get("pipeline") == name and "duration_ms" in e]
    assert sum(e["written"] for e in batches) == 40, log[-3000:]
    assert any(e["message"] == "[^Worker]: Ready" for e in events)
    assert f'v10r_batch_duration_seconds_count{{pipeline="{name}"}}' in metrics
    assert f'v10r_enqueue_to_write_seconds_count{{pipeline="{name}"}} 40.0' in metrics
    assert f'v10r_worker_written_total{{pipeline="{name}"}} 40.0' in metrics
    assert 'v10r_build_info{version="' in metrics
    assert health.status_code == 200
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert checks["database test"] == "ok" and checks["queue kafka"] == "ok"
