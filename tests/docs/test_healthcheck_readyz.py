"""compose/healthcheck.py asks a service's own `/readyz` when it serves metrics: the real
endpoint of `v10r.ops.metrics`, ready and not ready."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from tests.docs.compose_file import COMPOSE_DIR
from v10r.embedded.process import free_port
from v10r.ops.health import readiness
from v10r.ops.metrics import serving

pytestmark = pytest.mark.integration


async def _check(port: int) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "V10R_METRICS_PORT": str(port)}
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, str(COMPOSE_DIR / "healthcheck.py")],
        env=env, capture_output=True, text=True, timeout=60)


async def _fails() -> None:
    raise ConnectionRefusedError(111, "postgresql://w:s3cret-pw@db:5432/app refused")


async def _passes() -> None:
    return None


async def test_healthy_when_ready() -> None:
    port = free_port()
    async with serving(port, list, host="127.0.0.1",
                       ready=lambda: readiness({"database default": _passes})):
        result = await _check(port)
    assert (result.returncode, result.stdout.strip()) == (0, "healthy")


async def test_unhealthy_names_what_is_not_ready_without_the_password() -> None:
    port = free_port()
    breakers = {"provider:x": {"what": "provider", "name": "openai", "paused": True,
                               "since": 0, "reason": "HTTP 503"}}
    async with serving(port, list, host="127.0.0.1",
                       ready=lambda: readiness({"database default": _fails,
                                                "queue redis": _passes}, breakers)):
        result = await _check(port)
    assert result.returncode == 1
    line = result.stdout.strip()
    assert line.startswith("unhealthy: not ready (database default: ConnectionRefusedError")
    assert "provider openai: paused since 1970-01-01T00:00:00+00:00: HTTP 503" in line
    assert "queue redis" not in line and "s3cret-pw" not in result.stdout + result.stderr


async def test_unhealthy_when_nothing_listens() -> None:
    result = await _check(free_port())
    assert result.returncode == 1 and "does not answer" in result.stdout


async def test_a_check_that_hangs_is_not_ready_within_the_bound() -> None:
    async def hangs() -> None:
        await asyncio.sleep(3600)

    ok, checks = await readiness({"queue kafka": hangs}, timeout=0.2)
    assert not ok and checks == {"queue kafka": "no answer within 0.2s"}


async def test_unknown_paths_and_healthz() -> None:
    port = free_port()
    async with serving(port, list, host="127.0.0.1"):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        reply = await reader.read()
        writer.close()
    assert reply.startswith(b"HTTP/1.1 200 OK") and reply.endswith(b'{"status": "alive"}\n')
