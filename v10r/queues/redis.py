"""Redis streams: one stream per pipeline, one consumer group shared by all workers.

Layout (stable; `v10r dlq` and operators rely on it):
- tasks: stream `v10r:tasks:<pipeline>` for live tasks and `v10r:tasks:<pipeline>:catchup`
  for catch-up and backfill tasks, which a consumer reads only when no live task waits;
  group `v10r-workers` on each, fields `task` (a task
  message, up to `MAX_MESSAGE_ROWS` rows; see `v10r.tasks`) and `attempts` (deliveries
  before this entry; "1" when fresh);
- dead letters: stream `v10r:dlq:<pipeline>`, fields `task`, `error`, `attempts`,
  `failed_at` (unix seconds).

- liveness: key `v10r:alive:<consumer>`, refreshed while the consumer runs, expiring
  `dead_after` seconds after it stops.

Ack is XACK+XDEL of an entry once all its rows are settled (a retried row is re-added
alone, in the same transaction), so the stream holds only unfinished work. A consumer that dies keeps
its entries pending; once its liveness key has expired, any other consumer claims them
(XCLAIM), and the stream's delivery counter adds to `attempts`. A live consumer's
batch is never taken, however slow it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from v10r.queues.base import (
    DeadLetter,
    Delivery,
    Depth,
    Held,
    read_dead_letter,
    read_deliveries,
    readable,
    settled_messages,
)
from v10r.queues.connect import consumer_name, within
from v10r.redis_client import client_from_url
from v10r.tasks import MAX_MESSAGE_ROWS, ORIGINS, Task, pack, read_message

log = logging.getLogger(__name__)

GROUP = "v10r-workers"
RECLAIM_EVERY = 1.0  # seconds between looks for dead consumers while a consume waits
DEAD_AFTER = 3.0  # a consumer whose liveness key is this old is presumed dead
SOCKET_TIMEOUT = 15.0


async def _client(url: str) -> aioredis.Redis:
    """Plain or Sentinel (`redis+sentinel://`); a bad URL becomes a masked `QueueError`."""
    return client_from_url(url, socket_connect_timeout=5, socket_timeout=SOCKET_TIMEOUT)


def task_stream(pipeline: str, origin: str = "live") -> str:
    """Live tasks and catch-up (backfill) tasks have a stream each: live ones go first."""
    return f"v10r:tasks:{pipeline}" if origin == "live" else f"v10r:tasks:{pipeline}:{origin}"


def task_streams(pipeline: str) -> tuple[str, ...]:
    return tuple(task_stream(pipeline, origin) for origin in ORIGINS)


def dlq_stream(pipeline: str) -> str:
    return f"v10r:dlq:{pipeline}"


def alive_key(consumer: str) -> str:
    return f"v10r:alive:{consumer}"


class RedisQueue:
    kind = "redis"

    def __init__(self, url: str, *, pipelines: Sequence[str] = (),
                 dead_after: float = DEAD_AFTER, maxlen: int | None = None) -> None:
        self.url = url
        self.pipelines = tuple(pipelines)
        self.dead_after = dead_after
        self.maxlen = maxlen
        self.consumer = consumer_name()
        self._redis: aioredis.Redis | None = None
        self._groups: set[str] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        self._held = Held()

    def __repr__(self) -> str:
        return f"RedisQueue(consumer={self.consumer!r})"  # never the URL: it may hold a password

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("RedisQueue.start() was not called")
        return self._redis

    async def start(self) -> None:
        # A read never waits forever on a stalled server (a blocking read waits ≤ 1 s).
        self._redis = await within("redis", self.url, _client(self.url))
        await within("redis", self.url, self._redis.ping())
        for pipeline in self.pipelines:
            await self._ensure_group(pipeline)

    async def close(self) -> None:
        """Stop the heartbeat and drop the liveness key: what is pending is taken over now."""
        self._held = Held()  # unacked on the broker: redelivered
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            # bounded: a close must end even if the task failed to stop
            await asyncio.wait({self._heartbeat}, timeout=SOCKET_TIMEOUT)
            self._heartbeat = None
            with contextlib.suppress(Exception):
                await self.redis.delete(alive_key(self.consumer))
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def _beat(self) -> None:
        """Refresh the liveness key; started by the first consume (publishers hold none)."""
        ttl_ms = max(50, int(self.dead_after * 1000))
        if self._heartbeat is None:
            await self.redis.set(alive_key(self.consumer), b"1", px=ttl_ms)
            self._heartbeat = asyncio.create_task(self._beat_forever(ttl_ms))

    async def _beat_forever(self, ttl_ms: int) -> None:
        while True:
            await asyncio.sleep(ttl_ms / 3000)
            try:
                await self.redis.set(alive_key(self.consumer), b"1", px=ttl_ms)
            except Exception as exc:  # noqa: BLE001 - the broker is down: the consume says so
                log.debug("redis heartbeat failed: %s", exc)

    async def _ensure_group(self, pipeline: str) -> None:
        if pipeline in self._groups:
            return
        for stream in task_streams(pipeline):
            try:
                await self.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._groups.add(pipeline)

    async def publish(self, pipeline: str, tasks: Sequence[Task]) -> None:
        await self._ensure_group(pipeline)
        pipe = self.redis.pipeline(transaction=False)
        for origin in ORIGINS:
            for message in pack([t for t in tasks if t.origin == origin]):
                pipe.xadd(task_stream(pipeline, origin), {"task": message.body, "attempts": 1},
                          maxlen=self.maxlen, approximate=True)
        await pipe.execute()

    async def consume(self, pipeline: str, max_batch: int, timeout: float) -> list[Delivery]:
        """Up to `max_batch` rows: those held from a message read before, else new ones."""
        return await self._held.serve(pipeline, max_batch,
                                      lambda: self._read(pipeline, max_batch, timeout))

    async def _read(self, pipeline: str, max_batch: int, timeout: float) -> list[Delivery]:
        """Take over a dead consumer's entries first; otherwise block for new ones."""
        await self._ensure_group(pipeline)
        await self._beat()
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            reclaimed = await self._reclaim(pipeline, _entries_for(max_batch))
            if reclaimed:
                return reclaimed
            remaining = deadline - time.monotonic()
            block_ms = int(min(remaining, RECLAIM_EVERY) * 1000)
            fresh = await self._read_new(pipeline, max_batch, block_ms)
            if fresh or remaining <= RECLAIM_EVERY:
                return fresh

    async def _read_new(self, pipeline: str, max_rows: int, block_ms: int) -> list[Delivery]:
        """Live entries if there are any; else block for entries of either stream."""
        live = await self._read_streams([task_stream(pipeline)], max_rows, None)
        if live:
            return live
        return await self._read_streams(task_streams(pipeline), max_rows,
                                        block_ms if block_ms > 0 else None)

    async def _read_streams(self, streams: Sequence[str], max_rows: int,
                            block: int | None) -> list[Delivery]:
        """Wait up to `block` ms for the first entries, then read on up to `max_rows`."""
        got: list[Delivery] = []
        per_entry = MAX_MESSAGE_ROWS  # a guess until entries were seen
        while len(got) < max_rows:
            reply = await self.redis.xreadgroup(
                GROUP, self.consumer, dict.fromkeys(streams, ">"),
                count=-(-(max_rows - len(got)) // per_entry), block=block)
            entries = [(_text(stream), e) for stream, found in reply or () for e in found]
            if not entries:
                break
            rows = [d for stream, (entry_id, fields) in entries
                    for d in _deliveries(stream, entry_id, fields, redelivered=0)]
            got += rows
            per_entry = max(1, len(rows) // len(entries))
            block = None
        return got

    async def _reclaim(self, pipeline: str, count: int) -> list[Delivery]:
        for stream in task_streams(pipeline):
            if claimed := await self._reclaim_stream(stream, count):
                return claimed
        return []

    async def _reclaim_stream(self, stream: str, count: int) -> list[Delivery]:
        """Claim the pending entries of consumers whose liveness key has expired."""
        holders = [c["name"] for c in await self.redis.xinfo_consumers(stream, GROUP)
                   if c["pending"] and _text(c["name"]) != self.consumer]
        if not holders:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for holder in holders:
            pipe.exists(alive_key(_text(holder)))
        for holder, alive in zip(holders, await pipe.execute(), strict=True):
            if not alive and (claimed := await self._claim(stream, holder, count)):
                return claimed
        return []

    async def _claim(self, stream: str, holder: bytes, count: int) -> list[Delivery]:
        pending = await self.redis.xpending_range(stream, GROUP, min="-", max="+", count=count,
                                                  consumername=holder)
        before = {p["message_id"]: p["times_delivered"] for p in pending}
        if not before:
            return []
        # A minimum idle time makes a second claimer of the same entries get none of them.
        claimed = await self.redis.xclaim(stream, GROUP, self.consumer,
                                          min_idle_time=int(self.dead_after * 500),
                                          message_ids=list(before))
        entries = [(i, f) for i, f in claimed if f]
        if entries:
            log.info("took over %d task(s) of %s, which stopped", len(entries), _text(holder))
        return [d for i, f in entries
                for d in _deliveries(stream, i, f, redelivered=before.get(i, 1))]

    async def ack(self, pipeline: str, deliveries: Sequence[Delivery]) -> None:
        pipe = self.redis.pipeline(transaction=True)
        if self._settle(pipe, deliveries):
            await pipe.execute()

    async def retry(self, pipeline: str, deliveries: Sequence[Delivery], error: str) -> None:
        """Re-add with attempts+1 and drop the old entry in one transaction: never lost."""
        if deliveries:
            pipe = self.redis.pipeline(transaction=True)
            for d in deliveries:
                origin = d.task.origin if d.task is not None else "live"
                pipe.xadd(task_stream(pipeline, origin),
                          {"task": d.body, "attempts": d.attempts + 1},
                          maxlen=self.maxlen, approximate=True)
            self._settle(pipe, deliveries)
            await pipe.execute()

    async def dead_letter(self, pipeline: str, deliveries: Sequence[Delivery], error: str) -> None:
        if not deliveries:
            return
        pipe = self.redis.pipeline(transaction=True)
        now = time.time()
        for d in deliveries:
            pipe.xadd(dlq_stream(pipeline), {"task": d.body, "error": error,
                                             "attempts": d.attempts, "failed_at": repr(now)})
        self._settle(pipe, deliveries)
        await pipe.execute()

    @staticmethod
    def _settle(pipe: aioredis.client.Pipeline, deliveries: Sequence[Delivery]) -> bool:
        """Ack the entries whose last row this settles, in the caller's transaction."""
        by_stream: dict[str, list[bytes]] = {}
        for stream, entry_id in settled_messages(deliveries):
            by_stream.setdefault(stream, []).append(entry_id)
        for stream, ids in by_stream.items():
            pipe.xack(stream, GROUP, *ids)
            pipe.xdel(stream, *ids)
        return bool(by_stream)

    async def depth(self, pipeline: str) -> Depth:
        """Over the live and catch-up streams: the group's lag (Redis 7) or the streams'
        length, pending entries, and consumers that are alive (their heartbeat key has
        not expired)."""
        waiting = pending = 0
        alive: set[str] = set()
        for stream in task_streams(pipeline):
            if not await self.redis.exists(stream):
                continue
            groups = [g for g in await self.redis.xinfo_groups(stream)
                      if _text(g["name"]) == GROUP]
            if not groups:
                waiting += await self.redis.xlen(stream)
                continue
            lag = groups[0].get("lag")
            waiting += int(lag) if lag is not None else await self.redis.xlen(stream)
            pending += int(groups[0]["pending"])
            for consumer in await self.redis.xinfo_consumers(stream, GROUP):
                name = _text(consumer["name"])
                if await self.redis.exists(alive_key(name)):
                    alive.add(name)
        return Depth(waiting, pending, len(alive))

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
        entries = [(i, f) for i, f in entries if readable(f.get(b"task", b""))]
        if not entries:
            return 0
        await self._ensure_group(pipeline)
        pipe = self.redis.pipeline(transaction=True)
        for _, fields in entries:
            pipe.xadd(task_stream(pipeline, _origin(fields[b"task"])),
                      {"task": fields[b"task"], "attempts": 1},
                      maxlen=self.maxlen, approximate=True)
        pipe.xdel(dlq_stream(pipeline), *[entry_id for entry_id, _ in entries])
        await pipe.execute()
        return len(entries)

    async def drop(self, pipeline: str) -> None:
        """Delete the pipeline's streams (tests, and `v10r` when a pipeline is removed)."""
        await self.redis.delete(*task_streams(pipeline), dlq_stream(pipeline))
        self._groups.discard(pipeline)


def _entries_for(rows: int) -> int:
    """Entries to read for about `rows` rows: a full entry holds `MAX_MESSAGE_ROWS`."""
    return max(1, rows // MAX_MESSAGE_ROWS)


def _deliveries(stream: str, entry_id: bytes, fields: dict[bytes, bytes], *,
                redelivered: int) -> list[Delivery]:
    try:
        attempts = int(fields.get(b"attempts", b"1")) + redelivered
    except ValueError:
        attempts = 1 + redelivered
    rows = read_deliveries(fields.get(b"task", b""), attempts, (stream, entry_id))
    with contextlib.suppress(ValueError):  # a stream id starts with its unix time in ms
        stamped = int(bytes(entry_id).split(b"-")[0]) / 1000
        for row in rows:
            row.enqueued_at = stamped
    return rows


def _origin(raw: bytes) -> str:
    return read_message(raw)[0].origin  # a replayed dead letter: readable, one row


def _dead_letter(entry_id: bytes, fields: dict[bytes, bytes]) -> DeadLetter:
    return read_dead_letter(fields.get(b"task", b""), error=fields[b"error"].decode(),
                            attempts=int(fields[b"attempts"]),
                            failed_at=float(fields[b"failed_at"]), id=entry_id.decode())


def _text(name: bytes | str) -> str:
    return name.decode() if isinstance(name, bytes) else name
