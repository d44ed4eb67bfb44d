"""compose/healthcheck.py (the v10r image's HEALTHCHECK) against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from tests.docs.compose_file import COMPOSE_DIR


async def _check(**env: str) -> subprocess.CompletedProcess:
    full_env = {"PATH": os.environ["PATH"], "V10R_HEALTH_PID": str(os.getpid()), **env}
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, str(COMPOSE_DIR / "healthcheck.py")],
        env=full_env, capture_output=True, text=True, timeout=60)


async def test_healthy_when_the_process_runs_and_the_database_answers(pg15_dsn: str) -> None:
    result = await _check(DATABASE_URL=pg15_dsn)
    assert (result.returncode, result.stdout.strip()) == (0, "healthy")


async def test_unhealthy_without_the_database_and_the_password_stays_hidden() -> None:
    result = await _check(DATABASE_URL="postgresql://v10r_writer:s3cret-pw@127.0.0.1:1/app")
    assert result.returncode == 1
    assert "database does not answer" in result.stdout
    assert "s3cret-pw" not in result.stdout + result.stderr


async def test_unhealthy_when_the_main_process_is_gone() -> None:
    result = await _check(V10R_HEALTH_PID="999999999")
    assert result.returncode == 1
    assert "not running" in result.stdout
