"""A real `faust -A v10r worker` subprocess, a Kafka pipeline spec on disk, and waits
that poll PostgreSQL with a deadline."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from v10r.spec.model import Pipeline

ROOT = Path(__file__).resolve().parents[3]
FAUST = Path(sys.executable).parent / "faust"
READY_MARK = "[^Worker]: Ready"
START_TIMEOUT_S = 60.0


def kafka_spec(name: str, table: str, base_url: str, **queue: Any) -> dict[str, Any]:
    """A pipeline on Kafka whose provider is the test's OpenAI-compatible HTTP server."""
    return {
        "version": 1,
        "name": name,
        "database": {"name": "test", "dsn": "${DATABASE_URL}"},
        "source": {"table": f"public.{table}", "key": "id", "columns": ["body"]},
        "embedding": {"provider": "custom", "base_url": base_url, "model": "test-model",
                      "dimensions": 384, "batch_size": 64, "max_retries": 0, "timeout_s": 5},
        "target": {"index": "none"},
        "queue": {"kind": "kafka", "partitions": 4, "max_attempts": 2, **queue},
    }


def worker_env(specs: Path, dsn: str, kafka_url: str, app_id: str) -> dict[str, str]:
    """What a test worker reads: quick group sessions and retries, a clock-skew margin."""
    return {"V10R_PIPELINES": str(specs), "DATABASE_URL": dsn, "V10R_KAFKA_URL": kafka_url,
            "V10R_FAUST_APP_ID": app_id, "V10R_FAUST_SESSION_TIMEOUT_S": "6",
            "V10R_FAUST_HEARTBEAT_S": "1", "V10R_FAUST_RETRY_INITIAL_S": "0.2",
            "V10R_FAUST_CLOCK_SKEW_S": "0.5"}


def write_spec(directory: Path, spec: dict[str, Any], dsn: str) -> Pipeline:
    """The spec file the worker reads, and the same pipeline with the DSN filled in."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{spec['name']}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return Pipeline.model_validate({**spec, "database": {"name": "test", "dsn": dsn}})


@dataclass
class FaustWorker:
    """One worker process; its log is kept in `workdir` for the failure message."""

    workdir: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log_path: Path | None = None
    startup_s: float = 0.0

    def start(self) -> FaustWorker:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"worker-{uuid.uuid4().hex[:6]}.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT), **self.env}
        started = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [str(FAUST), "-A", "v10r", "worker", "-l", "info", "--without-web"],
                cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = started + START_TIMEOUT_S
        while READY_MARK not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"faust worker did not become ready:\n{self.log()[-4000:]}")
            time.sleep(0.1)
        self.startup_s = time.monotonic() - started
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown, no commit, no flush."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, as a supervisor stops the worker; SIGKILL if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


async def wait_for(check: Callable[[], Awaitable[bool]], timeout: float, what: str,
                   worker: FaustWorker | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            tail = worker.log()[-4000:] if worker else ""
            raise AssertionError(f"timed out waiting for {what}\n{tail}")
        await asyncio.sleep(0.2)
