"""Which pipelines are applied and current: the listener and workers ask before running.

Read-only and forgiving: a missing table or column is reported as a problem of that
pipeline, not raised, so one broken pipeline does not stop the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from v10r.compile import content_hash, ddl
from v10r.compile.names import ROLES, PipelineNames, parse_marker, pipeline_names
from v10r.reconcile.introspect import LiveState, Recorded, introspect
from v10r.spec.identifiers import derive_name
from v10r.spec.model import Pipeline


@dataclass(frozen=True, slots=True)
class AppliedPipeline:
    """The names actually in use (a collision may have renamed the embedding column)
    and whether the database matches the spec."""

    name: str
    names: PipelineNames
    fingerprint: str
    applied: bool
    up_to_date: bool
    problems: tuple[str, ...] = ()  # why not applied / not up to date
    warnings: tuple[str, ...] = ()  # harmless for correctness (e.g. index still building)
    # The column queries read, when it is not `names` (a blue/green re-embedding is
    # filling `names.embedding` beside it; `v10r apply` swaps them once it is complete).
    serving: PipelineNames | None = None

    @property
    def migrating(self) -> bool:
        return self.serving is not None

    def describe(self) -> str:
        if self.up_to_date:
            return f"pipeline {self.name!r} is applied and up to date"
        return f"pipeline {self.name!r}: {'; '.join(self.problems)}"


async def applied_state(conn: asyncpg.Connection, pipelines: Sequence[Pipeline]
                        ) -> dict[str, AppliedPipeline]:
    """Per pipeline name: the names to use and whether `v10r apply` is needed first."""
    tables = {(p.source.schema_name, p.source.table_name) for p in pipelines}
    state = await introspect(conn, tables)
    return {p.name: pipeline_state(p, state) for p in pipelines}


def pipeline_state(p: Pipeline, state: LiveState) -> AppliedPipeline:
    rec = state.recorded.get(p.name)
    if rec is None:
        return AppliedPipeline(p.name, pipeline_names(p), content_hash.fingerprint(p),
                               applied=False, up_to_date=False,
                               problems=("not applied: run `v10r apply`",))
    serving = ddl.compile_pipeline(p, rec.embedding_column, _trigger_names(p, rec))
    filling = serving
    if rec.next_column:
        filling = ddl.compile_pipeline(p, rec.next_column, _trigger_names(p, rec))
    problems, warnings = _drift(serving, filling, rec, state)
    return AppliedPipeline(p.name, filling.names, filling.fingerprint, applied=True,
                           up_to_date=not problems, problems=tuple(problems),
                           warnings=tuple(warnings),
                           serving=serving.names if rec.next_column else None)


def _trigger_names(p: Pipeline, rec: Recorded) -> tuple[str, str] | None:
    names = pipeline_names(p)
    if not rec.triggers or rec.triggers[0] == names.trigger:
        return None
    bulk = rec.triggers[1] if len(rec.triggers) > 1 else derive_name(
        names.bulk_trigger, "_v10r")
    return rec.triggers[0], bulk


def _drift(serving: ddl.CompiledPipeline, c: ddl.CompiledPipeline, rec: Recorded,
           state: LiveState) -> tuple[list[str], list[str]]:
    """`c` is where vectors are written: the serving column, or the next one during a
    re-embedding. Its columns must carry this pipeline's marker: workers write only into
    columns the catalog says are v10r's, whatever the bookkeeping says."""
    n = c.names
    problems: list[str] = []
    warnings: list[str] = []
    if (rec.schema, rec.table) != (n.schema, n.table):
        problems.append(f"applied to {rec.schema}.{rec.table}, spec says {n.display_table}")
    if rec.definition_hash != serving.definition_hash:
        problems.append("the spec changed since the last apply: run `v10r apply`")
    if (rec.next_fingerprint or rec.fingerprint) != c.fingerprint:
        problems.append("model, dimensions or preprocessing changed: run `v10r apply`")
    table = state.table(n.schema, n.table)
    if table is None:
        return [*problems, f"table {n.display_table} does not exist"], warnings
    for col, role in zip(c.columns, ROLES, strict=True):
        live = table.columns.get(col.name)
        if live is None or live.type != col.type:
            problems.append(f"column {col.name} is missing or not {col.type}")
        elif parse_marker(live.comment) != (c.name, role):
            problems.append(f"column {col.name} does not carry v10r's marker: run `v10r apply`")
    for name in rec.triggers:
        trigger = table.triggers.get(name)
        if trigger is None or not trigger.is_v10r:
            problems.append(f"trigger {name} is missing")
    if serving.index is not None:
        index = table.indexes.get(serving.index.name)
        if index is None or not index.valid:
            warnings.append(f"HNSW index {serving.index.name} is not built yet: `v10r apply` "
                            "builds it (after the initial fill on large tables); queries work "
                            "meanwhile, without the index")
    return problems, warnings
