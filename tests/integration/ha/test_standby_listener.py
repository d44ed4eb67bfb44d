"""Standby listeners: one active per pipeline set and database, the others take over when
its session ends, and the takeover's catch-up scan finds what changed meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.integration.listen.helpers import Table, collect_ids, fast_settings, wait_until
from v10r.listen.leader import lock_key
from v10r.listen.listener import Listener
from v10r.queues.memory import MemoryQueue

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def started(listener: Listener) -> AsyncIterator[asyncio.Event]:
    """Run `listener` in the background (active or standby); the event stops it."""
    stop = asyncio.Event()
    task = asyncio.create_task(listener.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


def fast(**overrides):
    return fast_settings(standby_poll_s=0.1, **overrides)


@pytest.mark.parametrize("catchup", [True, False])
async def test_second_listener_waits_and_takes_over_with_a_catch_up(make_table,
                                                                    catchup: bool) -> None:
    table: Table = await make_table()
    name = table.pipeline.name
    first_queue, second_queue = MemoryQueue(), MemoryQueue()
    settings = fast(catchup=catchup, catchup_interval_s=0.2 if catchup else None)
    first = Listener([table.target], first_queue, settings)
    second = Listener([table.target], second_queue, settings)
    async with started(second) as stop_second, started(first) as stop_first:
        await wait_until(lambda: first.listening.is_set() or second.listening.is_set())
        active, standby = (first, second) if first.listening.is_set() else (second, first)
        # The active one publishes these (no worker: they stay stale); the standby neither
        # listens nor scans, however often its periodic scan is due.
        await table.insert(range(1, 51))
        await asyncio.sleep(0.6)
        assert not standby.listening.is_set()
        assert standby.stats.catchups == 0 and standby.stats.published == 0
        (stop_second if active is second else stop_first).set()
        await wait_until(lambda: standby.listening.is_set())
        queue = second_queue if standby is second else first_queue
        ids = await collect_ids(queue, name, set(range(1, 51)))  # found by the takeover scan
    assert set(ids) == set(range(1, 51))
    assert standby.stats.takeovers == 1 and active.stats.takeovers == 0


async def test_a_killed_session_hands_over_and_never_two_are_active(make_table,
                                                                    pg_dsn: str) -> None:
    table: Table = await make_table()
    first = Listener([table.target], MemoryQueue(), fast())
    second = Listener([table.target], MemoryQueue(), fast())
    async with started(first), started(second):
        await wait_until(lambda: first.listening.is_set() or second.listening.is_set())
        active = first if first.listening.is_set() else second
        admin = await asyncpg.connect(pg_dsn)
        try:  # the active session ends as on a crash or a network partition
            await admin.execute("SELECT pg_terminate_backend($1)", active.backend_pid)
        finally:
            await admin.close()
        old = active.backend_pid
        listeners = (first, second)
        # Whichever reconnects first leads (the killed one may win the race): exactly one.
        await wait_until(lambda: any(x.listening.is_set() and x.backend_pid != old
                                     for x in listeners))
        for _ in range(100):
            assert sum(x.listening.is_set() for x in listeners) <= 1
            await asyncio.sleep(0.01)
        assert sum(x.listening.is_set() for x in listeners) == 1


async def test_different_pipeline_sets_on_one_database_do_not_block_each_other(
        make_table) -> None:
    one: Table = await make_table()
    two: Table = await make_table()
    first = Listener([one.target], MemoryQueue(), fast())
    second = Listener([two.target], MemoryQueue(), fast())
    both = Listener([two.target, one.target], MemoryQueue(), fast())
    async with started(first), started(second), started(both):
        await wait_until(lambda: all(x.listening.is_set() for x in (first, second, both)))


def test_the_lock_key_depends_on_the_set_of_pipelines_only() -> None:
    assert lock_key(["b", "a"]) == lock_key(["a", "b", "a"])
    assert lock_key(["a"]) != lock_key(["a", "b"]) != lock_key(["b"])
    assert -(2**63) <= lock_key(["x" * 10_000]) < 2**63
