"""Per-pipeline progress counters, kept in a Faust table and readable from its changelog.

Each worker run counts under its own key (`<pipeline>/<run id>`), so workers never
overwrite each other's counts and the pipeline's totals are the sum over its keys: the
table is a grow-only counter. `read_progress` sums the changelog topic, so `v10r status`
can show the totals without joining the Faust group.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields

from aiokafka import AIOKafkaConsumer, TopicPartition

PROGRESS_TABLE = "progress"
APP_ID = "v10r"
QUIET_MS = 1000  # an empty poll this long means the end of the changelog


def changelog_topic(app_id: str = APP_ID) -> str:
    return f"{app_id}-{PROGRESS_TABLE}-changelog"


@dataclass(slots=True)
class Progress:
    processed: int = 0  # tasks finished: vector written or nothing to write
    written: int = 0  # rows whose vector (or empty-text marker) was written
    skipped: int = 0  # finished without a write: unchanged, gone, superseded, deduplicated
    deduplicated: int = 0  # skipped because the row was fetched after the task was published
    failed: int = 0  # tasks dead-lettered, or unreadable messages
    retried: int = 0  # extra attempts after a retryable failure
    batches: int = 0

    def add(self, other: Progress) -> Progress:
        return Progress(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                           for f in fields(self)})

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Progress:
        known = {f.name for f in fields(cls)}
        return cls(**{k: int(v) for k, v in data.items() if k in known})  # type: ignore[call-overload]


def progress_key(pipeline: str, run_id: str) -> str:
    return f"{pipeline}/{run_id}"


def total(entries: Iterable[tuple[str, Mapping[str, object]]], pipeline: str) -> Progress:
    """The pipeline's totals from `(key, counters)` pairs of the progress table."""
    result = Progress()
    for key, counters in entries:
        if key.rpartition("/")[0] == pipeline:
            result = result.add(Progress.from_dict(counters))
    return result


async def read_progress(bootstrap: str, pipeline: str, app_id: str = APP_ID) -> Progress:
    """The pipeline's totals, read from the progress table's changelog topic."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        topic = changelog_topic(app_id)
        await consumer.topics()
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        if not partitions:
            return Progress()
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
