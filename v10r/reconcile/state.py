"""Which pipelines are applied and current: the listener and workers ask before running.

Read-only and forgiving: a missing table or column is reported as a problem of that
pipeline, not raised, so one broken pipeline does not stop the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from v10r.compile import content_hash, ddl
from v10r.compile.names import PipelineNames, pipeline_names
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
    compiled = ddl.compile_pipeline(p, rec.embedding_column, _trigger_names(p, rec))
    problems, warnings = _drift(compiled, rec, state)
    return AppliedPipeline(p.name, compiled.names, compiled.fingerprint, applied=True,
                           up_to_date=not problems, problems=tuple(problems),
                           warnings=tuple(warnings))


def _trigger_names(p: Pipeline, rec: Recorded) -> tuple[str, str] | None:
    names = pipeline_names(p)
    if not rec.triggers or rec.triggers[0] == names.trigger:
        return None
    bulk = rec.triggers[1] if len(rec.triggers) > 1 else derive_name(
        names.bulk_trigger, "_v10r")
    return rec.triggers[0], bulk


def _drift(c: ddl.CompiledPipeline, rec: Recorded, state: LiveState
           ) -> tuple[list[str], list[str]]:
    n = c.names
    problems: list[str] = []
    warnings: list[str] = []
    if (rec.schema, rec.table) != (n.schema, n.table):
        problems.append(f"applied to {rec.schema}.{rec.table}, spec says {n.display_table}")
    if rec.definition_hash != c.definition_hash:
        problems.append("the spec changed since the last apply: run `v10r apply`")
    if rec.fingerprint != c.fingerprint:
        problems.append("model, dimensions or preprocessing changed: run `v10r apply`")
    table = state.table(n.schema, n.table)
    if table is None:
        return [*problems, f"table {n.display_table} does not exist"], warnings
    for col in c.columns:
        live = table.columns.get(col.name)
        if live is None or live.type != col.type:
            problems.append(f"column {col.name} is missing or not {col.type}")
    for name in rec.triggers:
        trigger = table.triggers.get(name)
        if trigger is None or not trigger.is_v10r:
            problems.append(f"trigger {name} is missing")
    if c.index is not None:
        index = table.indexes.get(c.index.name)
        if index is None or not index.valid:
            warnings.append(f"index {c.index.name} is missing or still building")
    return problems, warnings
