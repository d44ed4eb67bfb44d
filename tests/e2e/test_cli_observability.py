"""What an operator sees of a running worker: JSON logs with one line per batch, the
logging flags after the subcommand, `/metrics` histograms and queue depth, `/healthz`
and `/readyz` (real processes, Redis, PostgreSQL and an OpenAI-compatible server)."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.e2e import test_cli_worker as worker_cli
from tests.e2e.test_cli_worker import (
    Setup,
    embedded,
    eventually,
    run_cli,
    seed,
    start_cli,
    stop_cli,
)
from tests.services.openai_server import Reply
from v10r.embedded.process import free_port

pytestmark = [pytest.mark.e2e]

# The worker tests' fixtures: Redis, a fresh database, an OpenAI-compatible server.
setup, http_server = worker_cli.setup, worker_cli.http_server


def json_events(err: str) -> list[dict]:
    """Every stderr line that is a log event; each must be one whole JSON object."""
    events = []
    for line in err.splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


async def get(port: int, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(f"http://127.0.0.1:{port}{path}")


async def test_json_logs_one_line_per_batch_and_metrics_with_flags_after_the_command(
        setup: Setup):
    await seed(setup, 30)
    port = free_port()
    worker = await start_cli(setup, "worker", str(setup.spec), "--batch-size", "10",
                             "--metrics-port", str(port), "-v", "--log-format", "json")
    try:
        await eventually(embedded(setup, 30))
        idle = f'v10r_queue_consumers{{pipeline="{setup.name}",queue="redis"}} 1.0'
        await eventually(lambda: _has(port, idle), timeout=30)  # sampled every 5 s
        metrics = (await get(port, "/metrics")).text
        health, ready = await get(port, "/healthz"), await get(port, "/readyz")
    finally:
        code, err = await stop_cli(worker)
    assert code == 0, err
    assert "Traceback" not in err
    batches = [e for e in json_events(err) if e.get("pipeline") == setup.name
               and "duration_ms" in e]
    assert sum(e["written"] for e in batches) == 30
    assert all(e["level"] == "info" and e["table"] == "public.docs" and e["queue"] == "redis"
               and e["batch_size"] <= 10 and e["failed"] == 0 for e in batches)
    name = setup.name
    assert f'v10r_batch_duration_seconds_count{{pipeline="{name}"}}' in metrics
    assert "v10r_provider_request_seconds_count{provider=" in metrics
    assert f'v10r_enqueue_to_write_seconds_count{{pipeline="{name}"}} 30.0' in metrics
    assert f'v10r_queue_waiting{{pipeline="{name}",queue="redis"}} 0.0' in metrics
    assert f'v10r_queue_consumers{{pipeline="{name}",queue="redis"}} 1.0' in metrics
    assert 'v10r_build_info{version="' in metrics
    assert f'v10r_worker_written_total{{pipeline="{name}"}} 30.0' in metrics
    assert health.status_code == 200 and health.json() == {"status": "alive"}
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert checks["database default"] == "ok" and checks["queue redis"] == "ok"
    assert all(v == "ok" for v in checks.values())


async def _has(port: int, needle: str) -> bool:
    return await status_of(port, "/metrics") == 200 and needle in (
        await get(port, "/metrics")).text


async def test_readyz_is_503_with_the_reason_while_the_provider_is_down(setup: Setup):
    setup.server.always = Reply.error(503, "overloaded")
    await seed(setup, 3)
    port = free_port()
    worker = await start_cli(setup, "-vv", "worker", str(setup.spec), "--metrics-port",
                             str(port))

    async def not_ready() -> bool:
        return await status_of(port, "/readyz") == 503
    try:
        await eventually(not_ready)
        ready = await get(port, "/readyz")
        metrics = (await get(port, "/metrics")).text
        status_code, status_out, status_err = await run_cli(
            setup, "status", str(setup.spec), "--metrics-url",
            f"http://127.0.0.1:{port}/metrics")
        setup.server.always = None
        await eventually(embedded(setup, 3))
        await eventually(lambda: _ready(port))
    finally:
        code, err = await stop_cli(worker)
    assert code == 0, err
    body = ready.json()
    assert body["status"] == "not ready"
    provider = [v for k, v in body["checks"].items() if k.startswith("provider ")]
    assert provider and provider[0].startswith("paused since ") and "503" in provider[0]
    assert body["checks"]["database default"] == "ok"
    assert 'v10r_paused{name="' in metrics and "} 1.0" in metrics
    assert status_code == 3, status_err
    assert "paused: provider custom" in status_out and "(outage)" in status_out
    assert "Traceback" not in err  # an outage is one line, not a stack
    assert "paused: provider unreachable since" in err and "resumed" in err


async def _ready(port: int) -> bool:
    return await status_of(port, "/readyz") == 200


async def status_of(port: int, path: str) -> int | None:
    """The status of `path`, or None while the server is not listening yet."""
    try:
        return (await get(port, path)).status_code
    except httpx.ConnectError:
        return None


@pytest.mark.parametrize("args", [
    ("-vv", "--log-format", "json", "validate"),
    ("validate", "-vv", "--log-format", "json"),
    ("validate", "--verbose", "--log-format=text"),
])
async def test_logging_flags_go_before_or_after_the_subcommand(setup: Setup,
                                                               args: tuple[str, ...]):
    code, _, err = await run_cli(setup, *args, str(setup.spec))
    assert code == 0, err
    assert "No such option" not in err


async def test_an_unknown_log_format_is_a_usage_error(setup: Setup):
    code, _, err = await run_cli(setup, "validate", str(setup.spec), "--log-format", "xml")
    assert code == 2 and "xml" in err
