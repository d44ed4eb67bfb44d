"""A task cancelled while a Redis command is in flight stops: redis-py can finish such a
command and return normally, which would leave a worker or heartbeat loop running after
shutdown (and a close waiting on it forever)."""

from __future__ import annotations

import asyncio
import random

import pytest

from v10r.queues.redis import RedisQueue
from v10r.redis_client import client_from_url

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/0"
TRIES = 150


async def _cancel_mid_command(command) -> int:
    """How many of TRIES loops calling `command` kept running after one cancel."""
    async def loop() -> None:
        while True:
            try:
                await command()
            except Exception:  # noqa: BLE001, S110 - a loop that survives errors, as heartbeats do
                pass
            await asyncio.sleep(0)

    survivors = 0
    for _ in range(TRIES):
        task = asyncio.create_task(loop())
        await asyncio.sleep(random.random() * 0.003)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=1.0)
        if not done:
            survivors += 1
            while not task.done():  # clean up whatever it takes
                task.cancel()
                await asyncio.wait({task}, timeout=0.1)
    return survivors


async def test_a_cancelled_command_always_ends_its_task() -> None:
    client = client_from_url(REDIS_URL, socket_timeout=15)
    try:
        assert await _cancel_mid_command(
            lambda: client.set("v10r:test:cancel", b"1", px=3000)) == 0
    finally:
        await client.aclose()


async def test_a_cancelled_pipeline_always_ends_its_task() -> None:
    client = client_from_url(REDIS_URL, socket_timeout=15)

    async def pipelined() -> None:
        pipe = client.pipeline(transaction=False)
        pipe.set("v10r:test:cancel", b"1", px=3000)
        pipe.exists("v10r:test:cancel")
        await pipe.execute()
    try:
        assert await _cancel_mid_command(pipelined) == 0
    finally:
        await client.aclose()


async def test_a_consumer_closes_promptly_however_its_heartbeat_was_interrupted() -> None:
    for _ in range(20):
        queue = RedisQueue(REDIS_URL, dead_after=0.06)  # a beat every 20 ms
        await queue.start()
        assert await queue.consume(f"cancel-{random.random()}", 1, timeout=0.0) == []
        await asyncio.sleep(random.random() * 0.1)
        async with asyncio.timeout(5):
            await queue.close()
