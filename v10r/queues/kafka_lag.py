"""Consumer-group lag of a task topic: what `status` and metrics show as Kafka's depth.

Lag is the end offset minus the group's committed offset, summed over partitions; the
group is the first of `groups` that has members or committed offsets on the topic (the
`v10r worker` group or the Faust app's), and its members are the workers seen. The offsets are
read by a consumer that only assigns partitions, so it never joins the group.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from v10r.queues.base import Depth

TIMEOUT_MS = 5_000
MEMBERS = 5  # index of the members in a DescribeGroups response's group entry


async def topic_lag(bootstrap: str, topic: str, groups: Sequence[str]) -> Depth:
    ends: dict[TopicPartition, int] = {}
    for group in groups:
        committed, ends = await _offsets(bootstrap, topic, group)
        members = await _members(bootstrap, group)
        if committed or members:
            lag = sum(max(0, end - committed.get(tp, 0)) for tp, end in ends.items())
            return Depth(lag, None, members)
    return Depth(sum(ends.values()), None, 0)  # nobody consumes, nobody has consumed


async def _offsets(bootstrap: str, topic: str, group: str
                   ) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """(committed offsets of `group`, end offsets) per partition of `topic`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False, request_timeout_ms=TIMEOUT_MS)
    await consumer.start()
    try:
        await consumer.topics()  # loads metadata
        partitions = [TopicPartition(topic, p)
                      for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return {}, {}
        ends = await consumer.end_offsets(partitions)
        committed = {}
        for tp in partitions:
            offset = await consumer.committed(tp)
            if offset is not None and offset >= 0:
                committed[tp] = offset
        return committed, ends
    finally:
        await consumer.stop()


async def _members(bootstrap: str, group: str) -> int | None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_MS)
    await admin.start()
    try:
        responses = await admin.describe_consumer_groups([group])
    except Exception:  # noqa: BLE001 - membership is a nicety; lag is what matters
        return None
    finally:
        await admin.close()
    return sum(len(entry[MEMBERS]) for response in responses for entry in response.groups)
