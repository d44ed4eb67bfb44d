"""What the listener watches: a pipeline with its real (applied) names, and the task
it publishes for one row. Notifications and the catch-up scan build tasks here, so a
row's task looks the same whichever path found it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from v10r.compile.names import PipelineNames, pipeline_names
from v10r.keys import parse_json, wire_key
from v10r.spec.model import Pipeline
from v10r.tasks import Origin, RowKey, Task


@dataclass(frozen=True, slots=True)
class Target:
    """One applied pipeline; `names` carries the embedding column as it really exists."""

    pipeline: Pipeline
    names: PipelineNames

    @classmethod
    def of(cls, pipeline: Pipeline, names: PipelineNames | None = None) -> Target:
        return cls(pipeline, names or pipeline_names(pipeline))

    @property
    def name(self) -> str:
        return self.pipeline.name

    @property
    def table(self) -> str:
        """`schema.table`, as notifications carry it."""
        return self.names.display_table

    @property
    def channel(self) -> str:
        return self.names.channel

    def task_from_json(self, row_id: str, origin: Origin = "catchup") -> Task:
        """The task of a key given as JSON (`to_jsonb(key)::text`), read exactly: a
        `numeric` key through a float would name another row."""
        return self.task(parse_json(row_id), origin)

    def task(self, row_id: RowKey, origin: Origin = "live") -> Task:
        return Task(
            pipeline=self.pipeline.name,
            database=self.pipeline.database.name,
            table=self.names.display_table,
            id=wire_key(row_id),
            text_column=self.names.columns[0],
            embedding_column=self.names.embedding,
            origin=origin,
        )


def by_table(targets: Sequence[Target]) -> dict[str, list[Target]]:
    """Pipelines grouped by the `schema.table` they watch (several may share a table)."""
    grouped: dict[str, list[Target]] = {}
    for target in targets:
        grouped.setdefault(target.table, []).append(target)
    return grouped
