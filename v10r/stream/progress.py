"""Per-pipeline progress counters, kept in a Faust table and readable from its changelog.

Each worker run counts under its own key (`<pipeline>/<run id>`), so workers never
overwrite each other's counts and the pipeline's totals are the sum over its keys: the
table is a grow-only counter. `read_progress` sums the changelog topic, so `v10r status`
can show the totals without joining the Faust group.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition

from v10r.work.settle import Counters

PROGRESS_TABLE = "progress"
APP_ID = "v10r"
QUIET_MS = 1000  # an empty poll this long means the end of the changelog


def changelog_topic(app_id: str = APP_ID) -> str:
    return f"{app_id}-{PROGRESS_TABLE}-changelog"


def progress_key(pipeline: str, run_id: str) -> str:
    return f"{pipeline}/{run_id}"


def total(entries: Iterable[tuple[str, Mapping[str, object]]], pipeline: str) -> Counters:
    """The pipeline's totals from `(key, counters)` pairs of the progress table."""
    result = Counters()
    for key, counters in entries:
        if key.rpartition("/")[0] == pipeline:
            result.add(Counters.from_dict(counters))
    return result


async def read_progress(bootstrap: str, pipeline: str, app_id: str = APP_ID) -> Counters:
    """The pipeline's totals, read from the progress table's changelog topic."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        topic = changelog_topic(app_id)
        await consumer.topics()
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        if not partitions:
            return Counters()
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        latest: dict[str, Mapping[str, object]] = {}
        while batch := await consumer.getmany(timeout_ms=QUIET_MS):
            for records in batch.values():
                for record in records:
                    if record.key is not None and record.value is not None:
                        latest[json.loads(record.key)] = json.loads(record.value)
        return total(latest.items(), pipeline)
    finally:
        await consumer.stop()
