"""Reading and replaying a Kafka dead-letter topic, which cannot delete messages.

The `v10r-dlq` group's committed offset marks how far dead letters were replayed: a
listing starts there, and a replay advances it over the replayed prefix of each
partition. The end of the topic is found by an empty poll, not by `end_offsets`,
which some Kafka-protocol brokers report wrongly for multi-record batches.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from v10r.queues.base import DeadLetter, read_dead_letter

Position = tuple[TopicPartition, int]
QUIET_MS = 1000  # an empty poll this long means the end of the topic


def _consumer(bootstrap: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                            enable_auto_commit=False, auto_offset_reset="earliest")


async def read_dead_letters(bootstrap: str, topic: str, group: str,
                            limit: int | None) -> list[tuple[DeadLetter, Position]]:
    consumer = _consumer(bootstrap, group)
    await consumer.start()
    try:
        await consumer.topics()  # loads metadata
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        found: list[tuple[DeadLetter, Position]] = []
        while limit is None or len(found) < limit:
            batch = await consumer.getmany(timeout_ms=QUIET_MS)
            if not batch:
                break
            for tp, records in sorted(batch.items()):
                found.extend((_letter(tp, r), (tp, r.offset)) for r in records)
        return found if limit is None else found[:limit]
    finally:
        await consumer.stop()


async def commit_replayed(bootstrap: str, group: str,
                          records: Sequence[tuple[DeadLetter, Position]],
                          replayed: set[Position]) -> None:
    """Advance each partition's offset over its leading run of replayed dead letters."""
    commits: dict[TopicPartition, int] = {}
    blocked: set[TopicPartition] = set()
    for _, (tp, offset) in sorted(records, key=lambda r: (r[1][0].partition, r[1][1])):
        if tp in blocked or (tp, offset) not in replayed:
            blocked.add(tp)
            continue
        commits[tp] = offset + 1
    if not commits:
        return
    consumer = _consumer(bootstrap, group)
    await consumer.start()
    try:
        consumer.assign(list(commits))
        await consumer.commit(commits)
    finally:
        await consumer.stop()


def _letter(tp: TopicPartition, record: ConsumerRecord) -> DeadLetter:
    headers = {name: value.decode(errors="replace") for name, value in record.headers or ()}
    return read_dead_letter(record.value or b"", error=headers.get("error", ""),
                            attempts=int(headers.get("attempts", "1")),
                            failed_at=float(headers.get("failed_at", "0")),
                            id=f"{tp.partition}:{record.offset}")
