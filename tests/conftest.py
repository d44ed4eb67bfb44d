"""Session-wide real services. Each fixture starts what the machine does not run itself
and cleans up after; tests get isolated databases, streams and queues."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.services.postgres import MACHINE_PG15_DSN, fresh_database
from v10r.embedded.postgres import EmbeddedPostgres

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres]:
    """PostgreSQL 18 + pgvector on 127.0.0.1 and a free port, for the whole session."""
    data_dir = Path(tempfile.mkdtemp(prefix="v10r-pg-"))
    started = time.monotonic()
    server = EmbeddedPostgres(data_dir / "data").start()
    os.environ["V10R_TEST_PG_START_S"] = f"{time.monotonic() - started:.2f}"
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
async def pg_dsn(pg_server: EmbeddedPostgres) -> AsyncIterator[str]:
    """A fresh database with the `vector` extension, dropped after the test."""
    async with fresh_database(pg_server.dsn) as dsn:
        yield dsn


@pytest.fixture
async def pg_dsn_no_vector(pg_server: EmbeddedPostgres) -> AsyncIterator[str]:
    """A fresh database on the pgvector server, without the extension created."""
    async with fresh_database(pg_server.dsn, vector=False) as dsn:
        yield dsn


@pytest.fixture
async def pg15_dsn() -> AsyncIterator[str]:
    """A fresh database on the machine's PostgreSQL 15, which has no pgvector."""
    async with fresh_database(MACHINE_PG15_DSN, vector=False) as dsn:
        yield dsn
