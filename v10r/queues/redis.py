"""Redis streams: one stream per pipeline, one consumer group shared by all workers.

Layout (stable; `v10r dlq` and operators rely on it):
- tasks: stream `v10r:tasks:<pipeline>`, group `v10r-workers`, fields `task` (the
  `Task.to_json()` bytes) and `attempts` (deliveries before this entry; "1" when fresh);
- dead letters: stream `v10r:dlq:<pipeline>`, fields `task`, `error`, `attempts`,
  `failed_at` (unix seconds).

Ack is XACK+XDEL, so the stream holds only unfinished work. A consumer that dies keeps
its entries pending; any other consumer reclaims them with XAUTOCLAIM once they have
been idle `min_idle` seconds, and the stream's delivery counter adds to `attempts`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from v10r.queues.base import DeadLetter, Delivery
from v10r.queues.connect import consumer_name, within
from v10r.tasks import Task

GROUP = "v10r-workers"
RECLAIM_EVERY = 1.0  # seconds between XAUTOCLAIM probes while a consume waits


def task_stream(pipeline: str) -> str:
    return f"v10r:tasks:{pipeline}"


def dlq_stream(pipeline: str) -> str:
    return f"v10r:dlq:{pipeline}"


class RedisQueue:
    kind = "redis"

    def __init__(self, url: str, *, pipelines: Sequence[str] = (), max_attempts: int = 5,
                 min_idle: float = 30.0, maxlen: int | None = None) -> None:
        self.url = url
        self.pipelines = tuple(pipelines)
        self.max_attempts = max_attempts
        self.min_idle = min_idle
        self.maxlen = maxlen
        self.consumer = consumer_name()
        self._redis: aioredis.Redis | None = None
        self._groups: set[str] = set()

    def __repr__(self) -> str:
        return f"RedisQueue(consumer={self.consumer!r})"  # never the URL: it may hold a password

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("RedisQueue.start() was not called")
        return self._redis

    async def start(self) -> None:
        self._redis = aioredis.from_url(self.url, socket_connect_timeout=5)
        await within("redis", self.url, self._redis.ping())
        for pipeline in self.pipelines:
            await self._ensure_group(pipeline)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def _ensure_group(self, pipeline: str) -> None:
        if pipeline in self._groups:
            return
        try:
            await self.redis.xgroup_create(task_stream(pipeline), GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add(pipeline)

    async def publish(self, pipeline: str, tasks: Sequence[Task]) -> None:
        await self._add(pipeline, [(task, 1) for task in tasks])

    async def _add(self, pipeline: str, entries: Sequence[tuple[Task, int]]) -> None:
        await self._ensure_group(pipeline)
        pipe = self.redis.pipeline(transaction=False)
        for task, attempts in entries:
            pipe.xadd(task_stream(pipeline), {"task": task.to_json(), "attempts": attempts},
                      maxlen=self.maxlen, approximate=True)
        await pipe.execute()

    async def consume(self, pipeline: str, max_batch: int, timeout: float) -> list[Delivery]:
        """Reclaim a dead consumer's stale entries first; otherwise block for new ones."""
        await self._ensure_group(pipeline)
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            reclaimed = await self._reclaim(pipeline, max_batch)
            if reclaimed:
                return reclaimed
            remaining = deadline - time.monotonic()
            block_ms = int(min(remaining, RECLAIM_EVERY) * 1000)
            fresh = await self._read_new(pipeline, max_batch, block_ms)
            if fresh or remaining <= RECLAIM_EVERY:
                return fresh

    async def _read_new(self, pipeline: str, count: int, block_ms: int) -> list[Delivery]:
        reply = await self.redis.xreadgroup(GROUP, self.consumer, {task_stream(pipeline): ">"},
                                            count=count, block=block_ms if block_ms > 0 else None)
        entries = reply[0][1] if reply else []
        return [_delivery(entry_id, fields, redelivered=0) for entry_id, fields in entries]

    async def _reclaim(self, pipeline: str, count: int) -> list[Delivery]:
        stream = task_stream(pipeline)
        reply = await self.redis.xautoclaim(stream, GROUP, self.consumer,
                                            min_idle_time=int(self.min_idle * 1000),
                                            start_id="0-0", count=count)
        entries = [(i, f) for i, f in reply[1] if f]
        if not entries:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for entry_id, _ in entries:
            pipe.xpending_range(stream, GROUP, min=entry_id, max=entry_id, count=1)
        counts = [rows[0]["times_delivered"] if rows else 1 for rows in await pipe.execute()]
        return [_delivery(entry_id, fields, redelivered=n - 1)
                for (entry_id, fields), n in zip(entries, counts, strict=True)]

    async def ack(self, pipeline: str, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        ids = [d.handle for d in deliveries]
        pipe = self.redis.pipeline(transaction=True)
        pipe.xack(task_stream(pipeline), GROUP, *ids)
        pipe.xdel(task_stream(pipeline), *ids)
        await pipe.execute()

    async def retry(self, pipeline: str, deliveries: Sequence[Delivery], error: str) -> None:
        """Re-add with attempts+1 and drop the old entry in one transaction: never lost."""
        spent = [d for d in deliveries if d.attempts >= self.max_attempts]
        again = [d for d in deliveries if d.attempts < self.max_attempts]
        await self.dead_letter(pipeline, spent, error)
        if again:
            pipe = self.redis.pipeline(transaction=True)
            for d in again:
                pipe.xadd(task_stream(pipeline),
                          {"task": d.task.to_json(), "attempts": d.attempts + 1},
                          maxlen=self.maxlen, approximate=True)
            self._settle(pipe, pipeline, again)
            await pipe.execute()

    async def dead_letter(self, pipeline: str, deliveries: Sequence[Delivery], error: str) -> None:
        if not deliveries:
            return
        pipe = self.redis.pipeline(transaction=True)
        now = time.time()
        for d in deliveries:
            pipe.xadd(dlq_stream(pipeline), {"task": d.task.to_json(), "error": error,
                                             "attempts": d.attempts, "failed_at": repr(now)})
        self._settle(pipe, pipeline, deliveries)
        await pipe.execute()

    @staticmethod
    def _settle(pipe: aioredis.client.Pipeline, pipeline: str,
                deliveries: Sequence[Delivery]) -> None:
        ids = [d.handle for d in deliveries]
        pipe.xack(task_stream(pipeline), GROUP, *ids)
        pipe.xdel(task_stream(pipeline), *ids)

    async def dead_letters(self, pipeline: str, limit: int = 100) -> list[DeadLetter]:
        entries = await self.redis.xrange(dlq_stream(pipeline), count=limit)
        return [_dead_letter(entry_id, fields) for entry_id, fields in entries]

    async def replay(self, pipeline: str, ids: Sequence[str] | None = None) -> int:
        if ids is None:
            entries = await self.redis.xrange(dlq_stream(pipeline))
        else:
            pipe = self.redis.pipeline(transaction=False)
            for entry_id in ids:
                pipe.xrange(dlq_stream(pipeline), min=entry_id, max=entry_id)
            entries = [e for found in await pipe.execute() for e in found]
        if not entries:
            return 0
        await self._ensure_group(pipeline)
        pipe = self.redis.pipeline(transaction=True)
        for _, fields in entries:
            pipe.xadd(task_stream(pipeline), {"task": fields[b"task"], "attempts": 1},
                      maxlen=self.maxlen, approximate=True)
        pipe.xdel(dlq_stream(pipeline), *[entry_id for entry_id, _ in entries])
        await pipe.execute()
        return len(entries)

    async def drop(self, pipeline: str) -> None:
        """Delete the pipeline's streams (tests, and `v10r` when a pipeline is removed)."""
        await self.redis.delete(task_stream(pipeline), dlq_stream(pipeline))
        self._groups.discard(pipeline)


def _delivery(entry_id: bytes, fields: dict[bytes, bytes], *, redelivered: int) -> Delivery:
    attempts = int(fields.get(b"attempts", b"1")) + redelivered
    return Delivery(task=Task.from_json(fields[b"task"]), attempts=attempts, handle=entry_id)


def _dead_letter(entry_id: bytes, fields: dict[bytes, bytes]) -> DeadLetter:
    return DeadLetter(task=Task.from_json(fields[b"task"]), error=fields[b"error"].decode(),
                      attempts=int(fields[b"attempts"]), failed_at=float(fields[b"failed_at"]),
                      id=entry_id.decode())
