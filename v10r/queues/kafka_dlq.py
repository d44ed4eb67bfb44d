"""Reading and replaying a Kafka dead-letter topic, which cannot delete messages.

The `v10r-dlq` group's committed offset marks where the dead letters still to replay
begin: a listing starts there. A replay advances it past the last replayed letter of
each partition; letters it passes over that were not chosen are first written again
at the end of their partition, so they stay listed (with a new id). A crash between the
two lists such a letter twice, never loses it. The end of the topic is found by an
empty poll, not by `end_offsets`, which some Kafka-protocol brokers report wrongly for
multi-record batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from v10r.queues.base import DeadLetter, read_dead_letter

Position = tuple[TopicPartition, int]
QUIET_MS = 1000  # an empty poll this long means the end of the topic


def _consumer(bootstrap: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                            enable_auto_commit=False, auto_offset_reset="earliest")


@dataclass(frozen=True, slots=True)
class StoredLetter:
    """A dead letter and where it lies in the topic."""

    letter: DeadLetter
    tp: TopicPartition
    record: ConsumerRecord

    @property
    def position(self) -> Position:
        return self.tp, self.record.offset


async def read_dead_letters(bootstrap: str, topic: str, group: str,
                            limit: int | None) -> list[StoredLetter]:
    consumer = _consumer(bootstrap, group)
    await consumer.start()
    try:
        await consumer.topics()  # loads metadata
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        found: list[StoredLetter] = []
        while limit is None or len(found) < limit:
            batch = await consumer.getmany(timeout_ms=QUIET_MS)
            if not batch:
                break
            for tp, records in sorted(batch.items()):
                found.extend(StoredLetter(_letter(tp, r), tp, r) for r in records)
        return found if limit is None else found[:limit]
    finally:
        await consumer.stop()


def replay_plan(stored: Sequence[StoredLetter], replayed: set[Position]
                ) -> tuple[list[StoredLetter], dict[TopicPartition, int]]:
    """The letters to write again (passed over, not replayed) and each partition's new
    offset: just past its last replayed letter."""
    commits: dict[TopicPartition, int] = {}
    for s in stored:
        if s.position in replayed:
            commits[s.tp] = max(commits.get(s.tp, 0), s.record.offset + 1)
    kept = [s for s in stored if s.position not in replayed
            and s.tp in commits and s.record.offset < commits[s.tp]]
    return sorted(kept, key=lambda s: (s.tp.partition, s.record.offset)), commits


async def commit_offsets(bootstrap: str, group: str, commits: dict[TopicPartition, int]) -> None:
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
