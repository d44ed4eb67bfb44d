"""`v10r backfill` as users run it: once per table, resumable, never twice at once, and
`--wait` until every row is embedded — real processes, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.e2e.test_cli_listen import REDIS_URL, ROOT, WAIT_S, Setup, make_setup, run_cli, stop
from v10r.listen.backfill import LOCK_CLASS
from v10r.queues.redis import RedisQueue, task_stream
from v10r.tasks import read_message

pytestmark = [pytest.mark.e2e]

ROWS = 1200


async def queued_ids(queue: RedisQueue, pipeline: str) -> list[int]:
    entries = await queue.redis.xrange(task_stream(pipeline, "catchup"))
    return [t.id for _, fields in entries for t in read_message(fields[b"task"])]  # type: ignore[misc]


@pytest.fixture
async def redis_setup(pg_dsn: str, tmp_path: Path):
    setup = await make_setup(pg_dsn, tmp_path, "redis")
    queue = RedisQueue(REDIS_URL, pipelines=[setup.name])
    await queue.start()
    await setup.db.execute(f'INSERT INTO "{setup.table}" SELECT i, \'text \' || i '
                           f"FROM generate_series(1, {ROWS}) i")
    try:
        yield setup, queue
    finally:
        await queue.drop(setup.name)
        await queue.close()
        await setup.db.close()


async def backfill(setup: Setup, *args: str) -> tuple[int, str, str]:
    return await run_cli(setup, "backfill", str(setup.spec), *args)


async def test_a_second_run_while_rows_are_queued_enqueues_nothing(redis_setup):
    setup, queue = redis_setup
    code, out, err = await backfill(setup)
    assert code == 0, err and f"{setup.name}: {ROWS} row(s) enqueued" in out

    code, out, err = await backfill(setup)
    assert code == 0, err
    assert "0 row(s) enqueued" in out and f"{ROWS:,} row(s) of the last backfill" in out
    assert sorted(await queued_ids(queue, setup.name)) == list(range(1, ROWS + 1))

    code, out, err = await backfill(setup, "--restart")
    assert code == 0 and f"{ROWS} row(s) enqueued" in out, err
    assert len(await queued_ids(queue, setup.name)) == 2 * ROWS


async def test_a_run_that_stopped_resumes_after_its_last_published_key(redis_setup):
    setup, queue = redis_setup
    assert (await backfill(setup))[0] == 0
    await queue.redis.delete(task_stream(setup.name, "catchup"))
    await setup.db.execute("UPDATE v10r.backfill SET after_key = '700', published = 700, "
                           "finished_at = NULL")  # as a run killed after its 700th row

    code, out, err = await backfill(setup)

    assert code == 0, err
    assert "500 row(s) enqueued (resumed after 700 published before)" in out
    assert sorted(await queued_ids(queue, setup.name)) == list(range(701, ROWS + 1))


@pytest.mark.parametrize("bookmark", ["'\"not a number\"'", "'{\"id\": 1}'", "'null'",
                                      "'99999999999999999999999'"])
async def test_a_bookmark_that_is_not_a_key_restarts_from_the_first_row(redis_setup, bookmark):
    setup, queue = redis_setup
    assert (await backfill(setup))[0] == 0
    await queue.redis.delete(task_stream(setup.name, "catchup"))
    await setup.db.execute(f"UPDATE v10r.backfill SET after_key = {bookmark}::jsonb, "
                           "published = 5, finished_at = NULL")

    code, _out, err = await backfill(setup)

    assert code == 0 and "Traceback" not in err, err
    assert sorted(await queued_ids(queue, setup.name)) == list(range(1, ROWS + 1))


async def test_a_second_run_at_the_same_time_is_refused(redis_setup):
    setup, queue = redis_setup
    await setup.db.execute("SELECT pg_advisory_lock($1, hashtext($2))", LOCK_CLASS, setup.name)

    code, _out, err = await backfill(setup)

    assert code == 1 and "running in another process" in err and "Traceback" not in err
    assert await queued_ids(queue, setup.name) == []


async def test_wait_shows_progress_until_every_row_is_embedded(redis_setup):
    setup, _ = redis_setup
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "v10r", "worker", str(setup.spec), env=setup.env, cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        code, out, err = await asyncio.wait_for(backfill(setup, "--wait"), WAIT_S * 3)
    finally:
        await stop(worker)
    assert code == 0, err
    assert "backfill done" in out
    assert await setup.db.fetchval(f'SELECT count(*) FROM "{setup.table}" '
                                   "WHERE body_embedding IS NULL") == 0


async def test_wait_without_workers_gives_up_with_a_clear_line(redis_setup):
    setup, _ = redis_setup
    code, _, err = await backfill(setup, "--wait", "--stall-timeout", "2")
    assert code == 1 and "no row was embedded for 2s" in err and "Traceback" not in err


async def test_a_run_killed_mid_table_resumes_and_repeats_at_most_one_page(redis_setup):
    setup, queue = redis_setup
    await setup.db.execute(f'INSERT INTO "{setup.table}" SELECT i, \'more \' || i '
                           f"FROM generate_series({ROWS + 1}, 60000) i")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "v10r", "backfill", str(setup.spec), env=setup.env,
        cwd=str(ROOT), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(WAIT_S):
        while not await setup.db.fetchval("SELECT published FROM v10r.backfill"):
            await asyncio.sleep(0.005)
    process.kill()  # SIGKILL: no cleanup, the lock goes with the session
    await process.wait()
    before = await queued_ids(queue, setup.name)
    published = await setup.db.fetchval("SELECT published FROM v10r.backfill")
    if await setup.db.fetchval("SELECT finished_at IS NOT NULL FROM v10r.backfill"):
        pytest.skip("the run finished before the kill landed")

    code, out, err = await backfill(setup)

    assert code == 0 and "resumed after" in out, err
    after = await queued_ids(queue, setup.name)
    assert set(after) == set(range(1, 60001))  # nothing lost
    assert len(after) - 60000 <= 1000  # at most the page published but not bookmarked
    assert len(before) >= published


@pytest.mark.parametrize("how", ["no table", "no privilege"])
async def test_without_a_usable_bookmark_table_a_backfill_still_enqueues_every_row(
        redis_setup, how):
    setup, queue = redis_setup
    if how == "no table":
        await setup.db.execute("DROP TABLE v10r.backfill")  # a database applied long ago
    else:
        role = f"r_{setup.name}"
        await setup.db.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'pw'; "
                               f"GRANT SELECT ON \"{setup.table}\" TO {role}; "
                               f"GRANT USAGE ON SCHEMA v10r TO {role}; "
                               f"GRANT SELECT ON v10r.pipelines TO {role}; "
                               f"REVOKE ALL ON v10r.backfill FROM PUBLIC")
        dsn = setup.env["DATABASE_URL"]
        user_dsn = dsn.replace("://", f"://{role}:pw@", 1) if "@" not in dsn else \
            dsn.split("://")[0] + f"://{role}:pw@" + dsn.split("@", 1)[1]
        setup.env["DATABASE_URL"] = user_dsn

    code, out, err = await backfill(setup)

    assert code == 0 and f"{ROWS} row(s) enqueued" in out and "Traceback" not in err, err
    assert "cannot be resumed" in err
    assert sorted(await queued_ids(queue, setup.name)) == list(range(1, ROWS + 1))
