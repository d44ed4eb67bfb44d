"""Kafka: one topic per pipeline, keyed by row, committed only after ack.

Layout (stable; the Faust worker reads the same topics):
- tasks: topic `v10r.tasks.<pipeline>`, `partitions` partitions; a record is a task
  message (up to `MAX_MESSAGE_ROWS` rows, see `v10r.tasks`) whose rows share a group,
  and the group is the partition (`row_group`), so one row's tasks stay in order on one
  partition; key `[pipeline, group]`; optional header `attempts` (ASCII integer; absent
  means 1);
- dead letters: topic `v10r.dlq.<pipeline>`, same key and value, headers `error`,
  `attempts`, `failed_at` (ASCII unix seconds); a dead letter's id is "partition:offset".
- consumer group `v10r-workers` for tasks; `v10r-dlq` remembers which dead letters
  were replayed.

A record is acked once all its rows are settled, and a partition's offset is committed
up to the highest *contiguous* acked record, so a crash redelivers everything not yet
acked. A retry re-publishes the row alone with `attempts + 1` (to its partition), and
then the row counts as settled. The producer uses acks=all without idempotence or
transactions, which some Kafka-protocol brokers lack; duplicates are cheap downstream.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from v10r.errors import QueueError
from v10r.queues.base import DeadLetter, Delivery, Depth, Held, read_deliveries, settled_messages
from v10r.queues.connect import within
from v10r.queues.kafka_dlq import commit_offsets, read_dead_letters, replay_plan
from v10r.queues.kafka_offsets import OffsetTracker
from v10r.tasks import MAX_MESSAGE_ROWS, Task, pack

GROUP = "v10r-workers"
DLQ_GROUP = "v10r-dlq"
TOPIC_EXISTS = 36


def task_topic(pipeline: str) -> str:
    return f"v10r.tasks.{pipeline}"


def dlq_topic(pipeline: str) -> str:
    return f"v10r.dlq.{pipeline}"


Record = tuple[bytes | None, bytes, list[tuple[str, bytes]]]  # key, value, headers
Placed = tuple[int, Record]  # partition, record


def task_record(task: Task, attempts: int = 1) -> Record:
    """One row alone, partitioned by the client's partitioner on its row key."""
    return task.key, task.to_json(), [("attempts", str(attempts).encode())]


def task_records(tasks: Sequence[Task], partitions: int, attempts: int = 1, *,
                 max_rows: int = MAX_MESSAGE_ROWS) -> list[Placed]:
    """Tasks packed into records, each on the partition of its rows' group."""
    headers = [("attempts", str(attempts).encode())]
    return [(m.group, (m.key, m.body, headers))
            for m in pack(tasks, groups=partitions, max_rows=max_rows)]


def dead_letter_record(delivery: Delivery, error: str, failed_at: float) -> Record:
    """The one shape of a dead letter, written by the queue worker and the Faust agent."""
    key = delivery.task.key if delivery.task is not None else None
    return key, delivery.body, [("error", error.encode()),
                                ("attempts", str(delivery.attempts).encode()),
                                ("failed_at", repr(failed_at).encode())]


class _ForgetRevoked(ConsumerRebalanceListener):
    def __init__(self, tracker: OffsetTracker) -> None:
        self.tracker = tracker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.tracker.forget(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        return None


FETCH_MAX_WAIT_MS = 50
MAX_BATCH_BYTES_ENV = "V10R_KAFKA_MAX_BATCH_BYTES"
DEFAULT_MAX_BATCH_BYTES = 16384


def max_batch_bytes(environ: Mapping[str, str] | None = None) -> int:
    """Bytes per producer batch, from `$V10R_KAFKA_MAX_BATCH_BYTES` (default 16384).

    `1` sends one record per batch. The embedded Tansu broker numbers the records of a
    multi-record batch wrongly (offsets overlap the next batch), and Faust drops a
    record whose offset is below one it has read: one record per batch avoids both.
    Since a record carries up to `MAX_MESSAGE_ROWS` rows, that costs little.
    """
    raw = (os.environ if environ is None else environ).get(MAX_BATCH_BYTES_ENV, "")
    try:
        return max(1, int(raw)) if raw else DEFAULT_MAX_BATCH_BYTES
    except ValueError:
        raise QueueError(f"{MAX_BATCH_BYTES_ENV}={raw!r} is not a whole number",
                         hint=f"unset {MAX_BATCH_BYTES_ENV} or give it a byte count") from None


class KafkaQueue:
    kind = "kafka"

    def __init__(self, bootstrap: str, *, pipelines: Sequence[str] = (), partitions: int = 4,
                 session_timeout_ms: int = 10_000,
                 heartbeat_interval_ms: int = 3_000, group_id: str = GROUP,
                 url: str | None = None) -> None:
        self.bootstrap = bootstrap
        self.url = url or f"kafka://{bootstrap}"
        self.pipelines = tuple(pipelines)
        self.partitions = partitions
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.group_id = group_id
        self._producer: AIOKafkaProducer | None = None
        self._consumers: dict[str, tuple[AIOKafkaConsumer, OffsetTracker]] = {}
        # Loops whose first consume races share one consumer: a second group member
        # would be assigned partitions that nobody polls.
        self._consumer_lock = asyncio.Lock()
        self._held = Held()

    def __repr__(self) -> str:
        return f"KafkaQueue(pipelines={self.pipelines!r})"

    async def start(self) -> None:
        await within("kafka", self.url, self.create_topics(self.pipelines))
        # No linger: a publish queues all its records before the sender runs, so they
        # share requests anyway, and a lone change is not held back 5 ms.
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=0,
                                    max_batch_size=max_batch_bytes(),
                                    enable_idempotence=False, request_timeout_ms=15_000)
        await within("kafka", self.url, producer.start())
        self._producer = producer

    async def close(self) -> None:
        self._held = Held()  # unacked on the broker: redelivered
        for consumer, _ in self._consumers.values():
            await consumer.stop()
        self._consumers.clear()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def create_topics(self, pipelines: Sequence[str]) -> None:
        """Create task and DLQ topics up front; auto-created ones get the broker's default."""
        if not pipelines:
            return
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=10_000)
        await admin.start()
        try:
            names = [t for p in pipelines for t in (task_topic(p), dlq_topic(p))]
            reply = await admin.create_topics([NewTopic(n, self.partitions, 1) for n in names])
        finally:
            await admin.close()
        for topic, code, message in reply.topic_errors:
            if code not in (0, TOPIC_EXISTS):
                raise QueueError(f"cannot create Kafka topic {topic}: {message} (error {code})",
                                 hint="check the broker's topic policy and partition limits")

    async def delete_topics(self, pipelines: Sequence[str]) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([t for p in pipelines for t in (task_topic(p), dlq_topic(p))])
        finally:
            await admin.close()

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("KafkaQueue.start() was not called")
        return self._producer

    async def publish(self, pipeline: str, tasks: Sequence[Task]) -> None:
        topic = task_topic(pipeline)
        await self._send(topic, task_records(tasks, await self._partitions(topic)))

    async def _partitions(self, topic: str) -> int:
        """The topic's real partition count (it may predate `partitions`)."""
        return len(await self.producer.partitions_for(topic) or ()) or self.partitions

    async def _send(self, topic: str, records: Sequence[Record | Placed]) -> None:
        """Queue every record, then wait for all acknowledgements (the batch is one flush)."""
        futures = []
        for record in records:
            partition, (key, value, headers) = record if len(record) == 2 else (None, record)
            futures.append(await self.producer.send(topic, value, key=key, headers=headers,
                                                    partition=partition))
        for future in futures:
            await future

    async def consume(self, pipeline: str, max_batch: int, timeout: float) -> list[Delivery]:
        """Up to `max_batch` rows: those held from a message read before, else new ones."""
        return await self._held.serve(pipeline, max_batch,
                                      lambda: self._read(pipeline, max_batch, timeout))

    async def _read(self, pipeline: str, max_batch: int, timeout: float) -> list[Delivery]:
        consumer, tracker = await self._consumer(pipeline)
        deliveries: list[Delivery] = []
        wait_ms = int(timeout * 1000)
        while len(deliveries) < max_batch:  # then whatever is fetched already, up to max_batch
            records = max(1, (max_batch - len(deliveries)) // MAX_MESSAGE_ROWS)
            batches = await consumer.getmany(timeout_ms=wait_ms, max_records=records)
            if not batches:
                break
            for tp, found in batches.items():
                for record in found:
                    tracker.delivered(tp, record.offset)
                    rows = read_deliveries(record.value or b"", _attempts(record.headers),
                                           (tp, record.offset))
                    stamped = record.timestamp / 1000 if record.timestamp else None
                    for row in rows:
                        row.enqueued_at = stamped
                    deliveries += rows
            wait_ms = 0
        return deliveries

    async def _consumer(self, pipeline: str) -> tuple[AIOKafkaConsumer, OffsetTracker]:
        if pipeline in self._consumers:
            return self._consumers[pipeline]
        async with self._consumer_lock:
            if pipeline not in self._consumers:
                self._consumers[pipeline] = await self._open_consumer(pipeline)
        return self._consumers[pipeline]

    async def _open_consumer(self, pipeline: str) -> tuple[AIOKafkaConsumer, OffsetTracker]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=self.group_id, enable_auto_commit=False,
            auto_offset_reset="earliest", session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=self.heartbeat_interval_ms,
            # A fetch waits at most this long for data: some brokers (the embedded one)
            # hold an empty fetch for the whole wait, which would be the tasks' latency.
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS)
        tracker = OffsetTracker()
        await within("kafka", self.url, consumer.start())
        # Subscribing after start: the group join runs in the background and the
        # first `getmany` waits for it within its own timeout.
        consumer.subscribe([task_topic(pipeline)], listener=_ForgetRevoked(tracker))
        return consumer, tracker

    async def ack(self, pipeline: str, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        consumer, tracker = await self._consumer(pipeline)
        commits = tracker.acked(settled_messages(deliveries))
        if commits:
            await consumer.commit(commits)

    async def retry(self, pipeline: str, deliveries: Sequence[Delivery], error: str) -> None:
        """Each row alone (as a one-row record on its partition), with its attempts."""
        topic = task_topic(pipeline)
        partitions = await self._partitions(topic)
        await self._send(topic, [record for d in deliveries if d.task is not None
                                 for record in task_records([d.task], partitions,
                                                            d.attempts + 1, max_rows=1)])
        await self.ack(pipeline, deliveries)

    async def dead_letter(self, pipeline: str, deliveries: Sequence[Delivery], error: str) -> None:
        if not deliveries:
            return
        now = time.time()
        await self._send(dlq_topic(pipeline),
                         [dead_letter_record(d, error, now) for d in deliveries])
        await self.ack(pipeline, deliveries)

    async def depth(self, pipeline: str) -> Depth:
        from v10r.queues.kafka_lag import topic_lag

        faust_group = os.environ.get("V10R_FAUST_APP_ID") or "v10r"
        return await topic_lag(self.bootstrap, task_topic(pipeline), (self.group_id, faust_group))

    async def dead_letters(self, pipeline: str, limit: int = 100) -> list[DeadLetter]:
        stored = await read_dead_letters(self.bootstrap, dlq_topic(pipeline), DLQ_GROUP, limit)
        return [s.letter for s in stored]

    async def replay(self, pipeline: str, ids: Sequence[str] | None = None) -> int:
        """Re-publish dead letters, then move them out of the listing (see `kafka_dlq`)."""
        stored = await read_dead_letters(self.bootstrap, dlq_topic(pipeline), DLQ_GROUP, None)
        chosen = [s for s in stored
                  if s.letter.task is not None and (ids is None or s.letter.id in ids)]
        await self.publish(pipeline, [s.letter.task for s in chosen if s.letter.task is not None])
        kept, commits = replay_plan(stored, {s.position for s in chosen})
        await self._send(dlq_topic(pipeline), [
            (s.tp.partition, (s.record.key, s.record.value or b"", list(s.record.headers or ())))
            for s in kept])
        await commit_offsets(self.bootstrap, DLQ_GROUP, commits)
        return len(chosen)


def _attempts(headers: Sequence[tuple[str, bytes]] | None) -> int:
    for name, value in headers or ():
        if name == "attempts":
            try:
                return int(value)
            except ValueError:
                return 1
    return 1
