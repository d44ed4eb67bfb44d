"""Which pipelines the listener may serve: only those applied and up to date.

Listening for a pipeline whose trigger or columns are missing or drifted would publish
nothing (or tasks for columns that do not exist), so the listener refuses to start
instead, naming the pipeline, what is wrong, and `v10r apply` as the fix.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from v10r import db
from v10r.errors import PlanError
from v10r.listen.targets import Target
from v10r.reconcile import applied_state
from v10r.spec.model import Pipeline

FIX = "run `v10r apply` with the same specs, then start the listener again"


async def resolve_targets(conn: asyncpg.Connection, pipelines: Sequence[Pipeline]) -> list[Target]:
    """A `Target` per pipeline with its live names, or `PlanError` for the first not ready."""
    states = await applied_state(conn, pipelines)
    targets = []
    for pipeline in pipelines:
        state = states[pipeline.name]
        if not state.applied:
            raise PlanError(f"is not applied to {pipeline.source.table} in database "
                            f"{pipeline.database.name!r}", pipeline=pipeline.name, hint=FIX)
        if not state.up_to_date:
            raise PlanError(f"differs from what is applied: {'; '.join(state.problems)}",
                            pipeline=pipeline.name, hint=FIX)
        targets.append(Target(pipeline, state.names))
    return targets


async def resolve_all(pipelines: Sequence[Pipeline]) -> list[Target]:
    """`resolve_targets` over each pipeline's own database."""
    groups: dict[object, list[Pipeline]] = {}
    for pipeline in pipelines:
        groups.setdefault(pipeline.database, []).append(pipeline)
    targets: list[Target] = []
    for database, group in groups.items():
        conn = await db.connect(database, "read", pipeline=group[0].name, vector_codec=False)
        try:
            targets.extend(await resolve_targets(conn, group))
        finally:
            await conn.close()
    return targets
