"""`plan_pipelines`: connect to each database, read its state, diff, count rows to embed.

Read-only: planning never changes the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import asyncpg

from v10r import db
from v10r.compile import ddl
from v10r.compile.content_hash import stored_hash_sql
from v10r.compile.filter import filter_sql
from v10r.compile.names import PipelineNames
from v10r.errors import PlanError
from v10r.ops.status import pipeline_counts
from v10r.reconcile.columns import DEFAULT_INDEX_AFTER_ROWS, Fill, fill_names, fill_needed
from v10r.reconcile.diff import (
    DatabasePlan,
    DiffOptions,
    Filling,
    PipelinePlan,
    diff,
    resolve_names,
)
from v10r.reconcile.introspect import LiveState, introspect
from v10r.reconcile.ops import Operation
from v10r.reconcile.specset import SpecSet
from v10r.spec.identifiers import quote_ident
from v10r.spec.model import Database, Pipeline


@dataclass(frozen=True, slots=True)
class Plan:
    databases: tuple[DatabasePlan, ...]

    @property
    def operations(self) -> tuple[Operation, ...]:
        return tuple(op for d in self.databases for op in d.operations)

    @property
    def pipelines(self) -> tuple[PipelinePlan, ...]:
        return tuple(p for d in self.databases for p in d.pipelines)

    @property
    def has_changes(self) -> bool:
        return any(d.has_changes for d in self.databases)


def by_database(pipelines: Sequence[Pipeline]) -> list[tuple[Database, list[Pipeline]]]:
    """Pipelines grouped by the database they live in, in spec order."""
    groups: dict[str, tuple[Database, list[Pipeline]]] = {}
    for p in pipelines:
        key = p.database.model_dump_json()
        groups.setdefault(key, (p.database, []))[1].append(p)
    return list(groups.values())


def tables_of(pipelines: Sequence[Pipeline]) -> set[tuple[str, str]]:
    return {(p.source.schema_name, p.source.table_name) for p in pipelines}


async def open_checked(database: Database, pipelines: Sequence[Pipeline]) -> asyncpg.Connection:
    """A write connection to a database known to have pgvector."""
    label = ", ".join(p.name for p in pipelines)
    conn = await db.connect(database, pipeline=label, vector_codec=False)
    try:
        await db.require_pgvector(conn, pipeline=label)
    except BaseException:
        await conn.close()
        raise
    return conn


async def plan_pipelines(pipelines: list[Pipeline], *, prune: bool = False,
                         drop_columns: bool = False, stats: bool = True,
                         spec_set: SpecSet | None = None,
                         index_after_rows: int = DEFAULT_INDEX_AFTER_ROWS) -> Plan:
    """What `apply_pipelines` would do, per database, with rows/tokens/cost to embed."""
    plans = []
    for database, group in by_database(pipelines):
        conn = await open_checked(database, group)
        try:
            dbplan, state = await plan_database(
                conn, group, DiffOptions(prune, drop_columns, spec_set or SpecSet(),
                                         index_after_rows=index_after_rows), database.name)
            if stats:
                dbplan = await with_stats(conn, dbplan, state)
        finally:
            await conn.close()
        plans.append(dbplan)
    return Plan(tuple(plans))


async def plan_database(conn: asyncpg.Connection, group: Sequence[Pipeline],
                        options: DiffOptions, name: str) -> tuple[DatabasePlan, LiveState]:
    """Read the live state, count the columns being filled, diff. Read-only."""
    state = await introspect(conn, tables_of(group))
    fills = await _fills(conn, group, state, options.index_after_rows)
    return diff(group, state, replace(options, fills=fills), database=name), state


async def _fills(conn: asyncpg.Connection, group: Sequence[Pipeline], state: LiveState,
                 index_after_rows: int) -> dict[str, Fill]:
    """Rows pending in the column being filled, where the plan depends on it (a
    re-embedding ready to cut over, an index waiting for the initial fill)."""
    result: dict[str, Fill] = {}
    for p in group:
        table = state.table(p.source.schema_name, p.source.table_name)
        if table is None:
            continue
        try:
            [c] = resolve_names([p], state)
        except PlanError:
            continue  # diff raises it with the full context
        rec = state.recorded.get(p.name)
        names = fill_names(c, rec)
        if not fill_needed(c, table, rec, index_after_rows) or names.hash not in table.columns:
            continue
        counts = await pipeline_counts(conn, p, names)
        result[p.name] = Fill(counts.pending, counts.rows)
    return result


async def with_stats(conn: asyncpg.Connection, dbplan: DatabasePlan, state: LiveState
                     ) -> DatabasePlan:
    compiled = {c.name: c for c in dbplan.compiled}
    summaries = []
    for summary in dbplan.pipelines:
        c = compiled.get(summary.name)
        if c is not None:
            summary = await _pipeline_stats(conn, c, summary, state, dbplan.filling[c.name])
        summaries.append(summary)
    return replace(dbplan, pipelines=tuple(summaries))


def stale_rows_sql(c: ddl.CompiledPipeline, names: PipelineNames, hash_column_exists: bool
                   ) -> str:
    """Rows of the pipeline whose stored hash (in `names`) is missing or not the current
    text's; every row when that hash column does not exist (yet). Calls and operators
    are qualified (see `compile.ddl`)."""
    chars = " OPERATOR(pg_catalog.+) ".join(
        f"coalesce(pg_catalog.length({quote_ident(col)}::pg_catalog.text), 0)"
        for col in names.columns)
    where = filter_sql(c.pipeline.source.filter)
    if hash_column_exists:
        current = stored_hash_sql(names.columns, c.fingerprint)
        where = (f"({where}) AND NOT coalesce({quote_ident(names.hash)} "
                 f"OPERATOR(pg_catalog.=) {current}, false)")
    return (f"SELECT pg_catalog.count(*) AS rows, "
            f"coalesce(pg_catalog.sum({chars}), 0)::pg_catalog.int8 AS chars "
            f"FROM {names.qualified_table} WHERE {where}")


async def _pipeline_stats(conn: asyncpg.Connection, c: ddl.CompiledPipeline,
                          summary: PipelinePlan, state: LiveState, filling: Filling
                          ) -> PipelinePlan:
    table = state.tables[(c.names.schema, c.names.table)]
    exists = filling.names.hash in table.columns and not filling.from_scratch
    row = await conn.fetchrow(stale_rows_sql(c, filling.names, exists))
    tokens = int(row["chars"]) // 4
    price = c.pipeline.embedding.price_per_million_tokens
    cost = None if price is None else tokens / 1_000_000 * price
    return replace(summary, rows_to_embed=int(row["rows"]), tokens=tokens, cost_usd=cost)
