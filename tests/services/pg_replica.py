"""A physical streaming replica of the session's embedded PostgreSQL: `pg_basebackup -R`
(standby.signal + primary_conninfo) into a temporary directory, started on a free port.
Tests pause its replay (`pg_wal_replay_pause()`) to make it lag on purpose."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg

from v10r.embedded.postgres import EmbeddedPostgres, _bin_dir


@contextlib.contextmanager
def streaming_replica(primary: EmbeddedPostgres) -> Iterator[EmbeddedPostgres]:
    workdir = Path(tempfile.mkdtemp(prefix="v10r-replica-"))
    replica = EmbeddedPostgres(workdir / "data")
    replica.data_dir.mkdir()
    run_as = replica._prepare_permissions(_bin_dir())
    replica._run([_bin_dir() / "pg_basebackup", "-h", "127.0.0.1", "-p", primary.port,
                  "-U", primary.user, "-D", replica.data_dir, "-R", "-X", "stream",
                  "--no-sync"], run_as, 120)
    (replica.data_dir / "postmaster.pid").unlink(missing_ok=True)
    try:
        yield replica.start()
    finally:
        replica.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def replica_dsn(replica: EmbeddedPostgres, primary_dsn: str) -> str:
    """The same database as `primary_dsn`, on the replica."""
    return replica.dsn_for(primary_dsn.rsplit("/", 1)[1])


async def set_replay(replica_dsn_: str, *, paused: bool) -> None:
    conn = await asyncpg.connect(replica_dsn_.rsplit("/", 1)[0] + "/postgres")
    try:
        function = "pg_wal_replay_pause" if paused else "pg_wal_replay_resume"
        await conn.execute(f"SELECT pg_catalog.{function}()")
    finally:
        await conn.close()


async def wait_replayed(primary_dsn: str, replica_dsn_: str) -> None:
    """Until the replica has replayed everything the primary has written so far."""
    primary = await asyncpg.connect(primary_dsn)
    replica = await asyncpg.connect(replica_dsn_.rsplit("/", 1)[0] + "/postgres")
    try:
        position = await primary.fetchval("SELECT pg_catalog.pg_current_wal_lsn()")
        async with asyncio.timeout(30):
            while not await replica.fetchval(
                    "SELECT pg_catalog.pg_last_wal_replay_lsn() >= $1::pg_lsn", position):
                await asyncio.sleep(0.05)
    finally:
        await primary.close()
        await replica.close()
