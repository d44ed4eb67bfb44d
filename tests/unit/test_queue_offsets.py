"""Kafka commits only up to the highest offset below which every delivery was acked."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition

from v10r.queues.kafka_offsets import OffsetTracker

pytestmark = pytest.mark.unit

TP = TopicPartition("v10r.tasks.docs", 0)


@pytest.mark.parametrize(("delivered", "acks", "commits"), [
    ([0, 1, 2], [[0, 1, 2]], [3]),             # all at once
    ([0, 1, 2], [[1], [2], [0]], [None, None, 3]),  # out of order: wait for the gap
    ([5, 6, 7], [[5], [7], [6]], [6, None, 8]),
    ([0, 1], [[0], [0]], [1, None]),           # a repeated ack changes nothing
])
def test_commit_offset_follows_the_contiguous_acked_prefix(
        delivered: list[int], acks: list[list[int]], commits: list[int | None]) -> None:
    tracker = OffsetTracker()
    for offset in delivered:
        tracker.delivered(TP, offset)
    for ack, expected in zip(acks, commits, strict=True):
        assert tracker.acked([(TP, o) for o in ack]).get(TP) == expected


def test_partitions_commit_independently() -> None:
    tracker, other = OffsetTracker(), TopicPartition("v10r.tasks.docs", 1)
    tracker.delivered(TP, 0)
    tracker.delivered(other, 10)
    assert tracker.acked([(other, 10)]) == {other: 11}


def test_acks_for_a_revoked_partition_commit_nothing() -> None:
    tracker = OffsetTracker()
    tracker.delivered(TP, 0)
    tracker.forget([TP])
    assert tracker.acked([(TP, 0)]) == {}
