"""Consumer-group lag of a task topic: what `status` and metrics show as Kafka's depth.

Lag is the end offset minus the group's committed offset, summed over partitions; the
group is the one whose committed offsets cover the topic (the `v10r worker` group or
the Faust app's), and its members are the workers seen.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from v10r.queues.base import Depth

TIMEOUT_MS = 5_000


async def topic_lag(bootstrap: str, topic: str, groups: Sequence[str]) -> Depth:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_MS)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                request_timeout_ms=TIMEOUT_MS)
    await admin.start()
    try:
        await consumer.start()
        try:
            partitions = [TopicPartition(topic, p)
                          for p in sorted(consumer.partitions_for_topic(topic) or ())]
            ends = await consumer.end_offsets(partitions) if partitions else {}
        finally:
            await consumer.stop()
        for group in groups:
            committed = {tp: meta.offset for tp, meta in
                         (await admin.list_consumer_group_offsets(group)).items()
                         if tp.topic == topic and meta.offset >= 0}
            if committed:
                lag = sum(max(0, end - committed.get(tp, 0)) for tp, end in ends.items())
                return Depth(lag, None, await _members(admin, group))
        return Depth(sum(ends.values()), None, 0)  # nobody has consumed yet
    finally:
        await admin.close()


async def _members(admin: AIOKafkaAdminClient, group: str) -> int | None:
    try:
        described = await admin.describe_consumer_groups([group])
    except Exception:  # noqa: BLE001 - membership is a nicety; lag is what matters
        return None
    return sum(len(g.members) for g in described for g in getattr(g, "groups", [g])
               if hasattr(g, "members"))
