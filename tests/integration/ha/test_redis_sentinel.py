"""Redis through Sentinel: the queue and the shared rate limiter reach whichever server is
primary; after the primary is SIGKILLed, `v10r listen` and `v10r worker` go on with the
promoted replica and every row ends with the embedding of its current text."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_cli_listen import ROOT, make_setup
from tests.integration.ha.test_listener_failover import load, saw, stale_rows
from tests.services.redis_sentinel import PASSWORD, SentinelSetup, sentinel_setup
from v10r.errors import QueueError
from v10r.listen.targets import Target
from v10r.providers.ratelimit import RedisWindow
from v10r.queues.redis import RedisQueue
from v10r.redis_client import client_from_url, parse_sentinel_url
from v10r.spec.load import load_pipelines
from v10r.tasks import Task

pytestmark = [pytest.mark.integration]

WAIT_S = 90.0


@pytest.fixture(scope="module")
def sentinels() -> Iterator[SentinelSetup]:
    with sentinel_setup() as setup:
        yield setup


def task(i: int) -> Task:
    return Task(pipeline="p", database="d", table="public.t", id=i, text_column="body",
                embedding_column="body_embedding")


async def test_the_queue_works_through_sentinel(sentinels: SentinelSetup) -> None:
    queue = RedisQueue(sentinels.url, pipelines=["p"])
    await queue.start()
    try:
        await queue.publish("p", [task(i) for i in range(10)])
        got = await queue.consume("p", 100, 1.0)
        await queue.ack("p", got)
        assert sorted(d.task.id for d in got) == list(range(10))
    finally:
        await queue.drop("p")
        await queue.close()


async def test_the_shared_rate_limit_window_works_through_sentinel(sentinels) -> None:
    window = RedisWindow(client_from_url(sentinels.url), "v10r:test:window",
                         requests_per_minute=2, tokens_per_minute=None)
    try:
        assert [await window.try_acquire(1) for _ in range(2)] == [0.0, 0.0]
        assert await window.try_acquire(1) > 0
    finally:
        await window.aclose()


@pytest.mark.parametrize("url", [
    "redis+sentinel://:{pw}@127.0.0.1:1/v10rprimary/0",  # no sentinel there
    "redis+sentinel://:{pw}@127.0.0.1:1/v10rprimary/0?sentinel_password={pw}",
])
async def test_an_unreachable_sentinel_fails_start_clearly_with_the_password_masked(url):
    queue = RedisQueue(url.format(pw=PASSWORD), pipelines=["p"])
    with pytest.raises(QueueError) as caught:
        await queue.start()
    assert PASSWORD not in str(caught.value) and "127.0.0.1:1" in str(caught.value)


@pytest.mark.parametrize("url", [
    "redis+sentinel://:pw@/svc",  # no host
    "redis+sentinel://h:26379",  # no service
    "redis+sentinel://h:port/svc",  # port not a number
    "redis+sentinel://h:99999/svc",  # port out of range
    "redis+sentinel://h:26379/svc/db",  # db not a number
    "redis+sentinel://h:26379/svc/0/extra",
    "redis+sentinel://:pw@h:26379/svc?password=x",  # unknown parameter
])
async def test_a_bad_sentinel_url_is_a_clear_queue_error(url: str) -> None:
    with pytest.raises(QueueError) as caught:
        parse_sentinel_url(url)
    assert "Sentinel" in str(caught.value) and caught.value.hint


def test_a_sentinel_url_is_read_with_its_hosts_db_and_credentials() -> None:
    parsed = parse_sentinel_url("redis+sentinel://u:p%40ss@h1:1,[::1]:2/svc/3"
                                "?sentinel_password=sp&sentinel_username=su")
    assert parsed.hosts == (("h1", 1), ("::1", 2)) and (parsed.service, parsed.db) == ("svc", 3)
    assert (parsed.username, parsed.password) == ("u", "p@ss")
    assert parsed.sentinel == {"password": "sp", "username": "su"}


@pytest.mark.e2e
async def test_listen_and_worker_ride_out_a_killed_primary(pg_dsn: str, tmp_path: Path,
                                                           sentinels: SentinelSetup) -> None:
    setup = await make_setup(pg_dsn, tmp_path, "redis")
    setup.env["V10R_REDIS_URL"] = sentinels.url
    target = Target.of(load_pipelines([setup.spec])[0])
    processes, lines = [], {}
    done, counts = asyncio.Event(), [0, 0]
    try:
        for name, args in (("listen", ["--catchup-interval", "2"]), ("worker", [])):
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "v10r", name, str(setup.spec), *args, env=setup.env,
                cwd=str(ROOT), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            processes.append(process)
            lines[name] = collected = []
            asyncio.create_task(_collect(process, collected))
        await saw(lines["listen"], "listening for")
        loader = asyncio.create_task(load(setup, done, counts))
        await asyncio.sleep(3.0)
        old = sentinels.primary_port()
        sentinels.kill(old)  # SIGKILL: writes not yet replicated are lost with it
        await asyncio.sleep(6.0)  # sentinels agree and promote the replica meanwhile
        done.set()
        await loader
        assert sentinels.primary_port() != old
        async with asyncio.timeout(WAIT_S):
            while await stale_rows(setup, target) > 0:
                await asyncio.sleep(0.2)
        for process in processes:
            process.send_signal(signal.SIGTERM)
        codes = [await asyncio.wait_for(p.wait(), WAIT_S) for p in processes]
    finally:
        done.set()
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
        await setup.db.close()
        print("".join(f"{k}: {line}" for k, v in lines.items() for line in v))
    output = "".join(lines["listen"] + lines["worker"])
    print(f"\n{counts[0]} rows inserted, {counts[1]} updates; primary {old} killed")
    assert codes == [0, 0], output
    assert "Traceback" not in output and PASSWORD not in output


async def _collect(process: asyncio.subprocess.Process, lines: list[str]) -> None:
    assert process.stderr is not None
    while line := await process.stderr.readline():
        lines.append(line.decode())


def test_broker_client_errors_are_outages_and_bugs_are_not() -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    from v10r.queues.connect import is_broker_outage

    assert is_broker_outage(RedisConnectionError("Error 111 connecting"))
    assert is_broker_outage(ConnectionRefusedError()) and is_broker_outage(QueueError("down"))
    assert not is_broker_outage(TypeError("a bug")) and not is_broker_outage(KeyError("k"))
