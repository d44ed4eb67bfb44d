"""Two `v10r listen` processes under load; the active one is SIGKILLed: the standby takes
over within seconds and every row ends with the embedding of its current text."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.test_cli_listen import ROOT, Setup, make_setup
from v10r.listen.catchup import scan_query
from v10r.listen.targets import Target
from v10r.spec.load import load_pipelines

pytestmark = [pytest.mark.e2e]

WAIT_S = 90.0


async def spawn(setup: Setup) -> tuple[asyncio.subprocess.Process, list[str]]:
    """`v10r listen` with in-process workers; its stderr lines collect in the list."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "v10r", "listen", str(setup.spec), "--workers-in-process", "2",
        env=setup.env, cwd=str(ROOT), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)
    lines: list[str] = []

    async def read() -> None:
        assert process.stderr is not None
        while line := await process.stderr.readline():
            lines.append(line.decode())

    process._reader = asyncio.create_task(read())  # type: ignore[attr-defined]
    return process, lines


async def saw(lines: list[str], text: str, timeout: float = WAIT_S) -> float:
    """Seconds until a line containing `text` appeared."""
    start = time.monotonic()
    async with asyncio.timeout(timeout):
        while not any(text in line for line in lines):
            await asyncio.sleep(0.02)
    return time.monotonic() - start


async def load(setup: Setup, done: asyncio.Event, counts: list[int]) -> None:
    """Insert new rows and update random old ones until `done`."""
    next_id = 1
    while not done.is_set():
        await setup.db.execute(f'INSERT INTO "{setup.table}" SELECT i, \'row \' || i '
                               "FROM generate_series($1::int, $1::int + 4) i", next_id)
        next_id += 5
        for row in random.sample(range(1, next_id), min(5, next_id - 1)):
            await setup.db.execute(f'UPDATE "{setup.table}" SET body = $2 WHERE id = $1', row,
                                   f"edit {row} {time.monotonic_ns()}")
            counts[1] += 1
        counts[0] = next_id - 1
        await asyncio.sleep(0.02)


async def stale_rows(setup: Setup, target: Target) -> int:
    """Rows whose vector is missing or was not computed from their current text."""
    rows = await setup.db.fetch(scan_query(target, page_size=1_000_000).first)
    missing = await setup.db.fetchval(
        f'SELECT count(*) FROM "{setup.table}" WHERE body_embedding IS NULL')
    return len(rows) + missing


async def test_sigkill_of_the_active_listener_under_load_loses_nothing(pg_dsn: str,
                                                                       tmp_path: Path):
    setup = await make_setup(pg_dsn, tmp_path, "memory")
    target = Target.of(load_pipelines([setup.spec])[0])
    first, first_lines = await spawn(setup)
    second = None
    done, counts = asyncio.Event(), [0, 0]
    loader = None
    try:
        await saw(first_lines, "listening for")
        second, second_lines = await spawn(setup)
        await saw(second_lines, "standby: another listener is active")
        loader = asyncio.create_task(load(setup, done, counts))
        await asyncio.sleep(3.0)  # under load: the active one is publishing and embedding
        first.kill()
        await first.wait()
        takeover = await saw(second_lines, "active: took over", timeout=30)
        await asyncio.sleep(3.0)  # the load goes on against the new active listener
        done.set()
        await loader
        async with asyncio.timeout(WAIT_S):
            while (stale := await stale_rows(setup, target)) > 0:
                await asyncio.sleep(0.2)
        print(f"\n{counts[0]} rows inserted, {counts[1]} updates; "
              f"standby active {takeover:.2f}s after SIGKILL; stale at the end: {stale}")
        print("".join(second_lines))
        second.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(second.wait(), WAIT_S)
        await second._reader  # type: ignore[attr-defined]
    finally:
        done.set()
        if loader:
            with contextlib.suppress(Exception):
                await loader
        for process in (first, second):
            if process and process.returncode is None:
                process.kill()
                await process.wait()
        await setup.db.close()
    assert code == 0, second_lines
    assert "Traceback" not in "".join(first_lines + second_lines)
    assert counts[0] > 0 and counts[1] > 0
