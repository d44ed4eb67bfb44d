"""Which pipelines the listener may serve: only those applied and not drifted.

Listening for a pipeline whose trigger or columns are missing would publish nothing (or
tasks for columns that do not exist), so the listener refuses to start instead, naming
the pipeline and `v10r apply` as the fix.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from v10r.compile.names import pipeline_names
from v10r.errors import PlanError
from v10r.listen.targets import Target
from v10r.spec.model import Pipeline

_FIX = "run `v10r apply` with the same specs, then start the listener again"


async def resolve_targets(conn: asyncpg.Connection, pipelines: Sequence[Pipeline]) -> list[Target]:
    """A `Target` per pipeline with its live names, or `PlanError` for the first not ready."""
    try:
        from v10r.reconcile import applied_state
    except ImportError:
        return [await _check_catalog(conn, p) for p in pipelines]
    states = await applied_state(conn, pipelines)
    targets = []
    for pipeline in pipelines:
        state = states.get(pipeline.name)
        if state is None or not state.applied:
            raise PlanError("is not applied to its database", pipeline=pipeline.name, hint=_FIX)
        if state.drifted:
            raise PlanError("differs from what is applied in the database (drifted)",
                            pipeline=pipeline.name, hint=_FIX)
        targets.append(Target(pipeline, state.names))
    return targets


async def _check_catalog(conn: asyncpg.Connection, pipeline: Pipeline) -> Target:
    """Without the reconciler: the table, its hash column and its trigger must exist."""
    names = pipeline_names(pipeline)
    found = await conn.fetchrow(
        """SELECT
             EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = c.oid AND attname = $3
                     AND NOT attisdropped) AS has_hash,
             EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = c.oid AND tgname = $4) AS has_trigger
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = $1 AND c.relname = $2""",
        names.schema, names.table, names.hash, names.trigger)
    if found is None:
        raise PlanError(f"table {names.display_table} does not exist", pipeline=pipeline.name,
                        hint="create the table, or fix `source.table` in the spec")
    if not (found["has_hash"] and found["has_trigger"]):
        raise PlanError(f"is not applied to {names.display_table} (no v10r trigger or columns)",
                        pipeline=pipeline.name, hint=_FIX)
    return Target(pipeline, names)
