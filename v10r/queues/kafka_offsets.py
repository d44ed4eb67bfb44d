"""Which offset a Kafka consumer may commit, given acks that arrive out of order.

Committing offset N+1 tells the group "everything up to N is done". Workers ack
batches in any order, so only the highest offset below which *every* delivered
message was acked is safe; anything above waits, and a crash redelivers it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka import TopicPartition


@dataclass
class OffsetTracker:
    delivered_offsets: dict[TopicPartition, deque[int]] = field(default_factory=dict)
    acked_offsets: dict[TopicPartition, set[int]] = field(default_factory=dict)

    def delivered(self, tp: TopicPartition, offset: int) -> None:
        self.delivered_offsets.setdefault(tp, deque()).append(offset)
        self.acked_offsets.setdefault(tp, set())

    def acked(self, handles: Iterable[tuple[TopicPartition, int]]) -> dict[TopicPartition, int]:
        """Record acks; return the offsets to commit (next offset to read) per partition."""
        touched = set()
        for tp, offset in handles:
            if tp in self.acked_offsets:  # else: the partition was revoked meanwhile
                self.acked_offsets[tp].add(offset)
                touched.add(tp)
        commits = {}
        for tp in touched:
            pending, acked = self.delivered_offsets[tp], self.acked_offsets[tp]
            last = None
            while pending and pending[0] in acked:
                last = pending.popleft()
                acked.discard(last)
            if last is not None:
                commits[tp] = last + 1
        return commits

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """A revoked partition's uncommitted work belongs to its next owner."""
        for tp in partitions:
            self.delivered_offsets.pop(tp, None)
            self.acked_offsets.pop(tp, None)
