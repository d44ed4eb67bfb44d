"""Desired objects vs live state → the operations that close the gap. Pure.

Rules: v10r touches only what its bookkeeping says is v10r's (or, for triggers, what
calls `v10r.v10r_notify()`); a user's object under a wanted name is a collision, never
altered. Problems with the user's tables raise `PlanError` before anything is planned.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from v10r.compile import ddl
from v10r.compile.names import PipelineNames, pipeline_names
from v10r.errors import PlanError
from v10r.reconcile import ops
from v10r.reconcile.checks import check_pipeline, check_shared
from v10r.reconcile.introspect import LiveIndex, LiveState, LiveTable, Recorded
from v10r.spec.identifiers import derive_name
from v10r.spec.model import Pipeline

RENAME_SUFFIX = "_v10r"


@dataclass(frozen=True, slots=True)
class PipelinePlan:
    """What the plan does for one pipeline, with the numbers `v10r plan` shows."""

    name: str
    table: str  # schema.table
    action: str  # create | alter | unchanged | drop | removed (not in specs, kept)
    embedding_column: str
    renamed_from: str | None = None
    notes: tuple[str, ...] = ()
    rows_to_embed: int | None = None
    tokens: int | None = None
    cost_usd: float | None = None


@dataclass(frozen=True, slots=True)
class DatabasePlan:
    database: str  # the spec's logical database name
    operations: tuple[ops.Operation, ...]
    pipelines: tuple[PipelinePlan, ...]
    compiled: tuple[ddl.CompiledPipeline, ...] = field(default=(), repr=False)

    @property
    def has_changes(self) -> bool:
        return bool(self.operations)


def diff(pipelines: Sequence[Pipeline], state: LiveState, *, prune: bool = False,
         drop_columns: bool = False, database: str | None = None) -> DatabasePlan:
    """The plan for one database. Raises `PlanError` when the specs cannot be applied."""
    check_shared(pipelines, state)
    for p in pipelines:
        check_pipeline(p, state)
    compiled = resolve_names(pipelines, state)
    shared = _shared_ops(state)
    per_pipeline: list[ops.Operation] = []
    by_table: dict[tuple[str, str], list[ddl.CompiledPipeline]] = defaultdict(list)
    for c in compiled:
        by_table[(c.names.schema, c.names.table)].append(c)
        per_pipeline.extend(_object_ops(c, state))
    trigger_ops: list[ops.Operation] = []
    trigger_names: dict[tuple[str, str], tuple[str, ...]] = {}
    for ref, group in by_table.items():
        wanted = ddl.table_triggers(group)
        trigger_names[ref] = tuple(t.name for t in wanted)
        trigger_ops.extend(_trigger_ops(group, wanted, state.tables[ref]))
    moved = [op for c in compiled for op in _moved_ops(c, state, by_table)]
    records = [op for c in compiled if (op := _record_op(c, trigger_names, state))]
    removed, removed_plans = _removed(pipelines, state, by_table, prune, drop_columns)
    operations = (*shared, *per_pipeline, *trigger_ops, *moved, *removed, *records)
    summaries = tuple(_summary(c, operations, state) for c in compiled) + removed_plans
    name = database or (pipelines[0].database.name if pipelines else state.database)
    return DatabasePlan(name, tuple(operations), summaries, tuple(compiled))


def _shared_ops(state: LiveState) -> list[ops.Operation]:
    result: list[ops.Operation] = []
    if not (state.schema_exists and state.bookkeeping_exists):
        result.append(ops.CreateSchema())
    if state.function_source != ddl.NOTIFY_BODY:
        result.append(ops.CreateFunction(replace=state.function_source is not None))
    return result


# --- names and collisions --------------------------------------------------------------

def resolve_names(pipelines: Sequence[Pipeline], state: LiveState
                  ) -> list[ddl.CompiledPipeline]:
    """Compile every pipeline under names that are free or already v10r's."""
    compiled = [_resolve_columns(p, state) for p in pipelines]
    by_table: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, c in enumerate(compiled):
        by_table[(c.names.schema, c.names.table)].append(i)
    for ref, members in by_table.items():
        names = _resolve_triggers([compiled[i] for i in members], state.tables[ref])
        for i in members:
            c = compiled[i]
            compiled[i] = ddl.compile_pipeline(c.pipeline, c.names.embedding, names)
    return compiled


def _ours(p: Pipeline, state: LiveState) -> Recorded | None:
    rec = state.recorded.get(p.name)
    if rec and (rec.schema, rec.table) == (p.source.schema_name, p.source.table_name):
        return rec
    return None


def _taken(names: PipelineNames, p: Pipeline, state: LiveState) -> str | None:
    """The first wanted name that belongs to someone else, if any."""
    table = state.tables[(names.schema, names.table)]
    rec = _ours(p, state)
    mine_cols = set(rec.columns) if rec else set()
    for col in (names.embedding, *names.metadata_columns):
        if col in table.columns and col not in mine_cols:
            return f"column {names.display_table}.{col}"
    index_mine = rec is not None and rec.index_name == names.index \
        and names.index in table.indexes
    if p.target.index != "none" and (names.schema, names.index) in state.relations \
            and not index_mine:
        return f"index {names.schema}.{names.index}"
    return None


def _resolve_columns(p: Pipeline, state: LiveState) -> ddl.CompiledPipeline:
    base = p.embedding_column
    renamed = derive_name(base, RENAME_SUFFIX)
    rec = _ours(p, state)
    if rec and rec.embedding_column in (base, renamed):
        return ddl.compile_pipeline(p, rec.embedding_column)
    clash = _taken(pipeline_names(p), p, state)
    if clash is None:
        return ddl.compile_pipeline(p)
    if p.target.on_collision == "rename":
        clash_renamed = _taken(pipeline_names(p, renamed), p, state)
        if clash_renamed is None:
            return ddl.compile_pipeline(p, renamed)
        clash = f"{clash} (and {clash_renamed} for the renamed column)"
    raise PlanError(
        f"{clash} already exists and is not v10r's; v10r never alters it",
        pipeline=p.name, obj=p.source.table,
        hint=f"set `target.column` to a free name, or `target.on_collision: rename` to use "
        f"`{renamed}`")


def _resolve_triggers(group: Sequence[ddl.CompiledPipeline], table: LiveTable
                      ) -> tuple[str, str]:
    names = group[0].names
    wanted = (names.trigger, names.bulk_trigger)
    if not any(_foreign_trigger(table, n) for n in wanted):
        return wanted
    renamed = (derive_name(names.trigger, RENAME_SUFFIX),
               derive_name(names.bulk_trigger, RENAME_SUFFIX))
    rename_ok = all(c.pipeline.target.on_collision == "rename" for c in group)
    if rename_ok and not any(_foreign_trigger(table, n) for n in renamed):
        return renamed
    clash = next(n for n in wanted if _foreign_trigger(table, n))
    raise PlanError(
        f"trigger {clash} on {names.display_table} already exists and is not v10r's",
        pipeline=group[0].name, obj=names.display_table,
        hint="rename or drop that trigger, or set `target.on_collision: rename` on every "
        "pipeline of this table")


def _foreign_trigger(table: LiveTable, name: str) -> bool:
    trigger = table.triggers.get(name)
    return trigger is not None and not trigger.is_v10r


# --- columns, index, triggers ----------------------------------------------------------

def _object_ops(c: ddl.CompiledPipeline, state: LiveState) -> list[ops.Operation]:
    n = c.names
    table = state.tables[(n.schema, n.table)]
    renamed_from = c.pipeline.embedding_column if n.embedding != c.pipeline.embedding_column \
        else None
    result: list[ops.Operation] = []
    replaced = False
    for col in c.columns:
        live = table.columns.get(col.name)
        if live is None:
            first = col.name == n.embedding
            result.append(ops.AddColumn(n.schema, n.table, col.name, col.type,
                                        renamed_from if first else None, pipeline=c.name))
        elif live.type != col.type:
            replaced = replaced or col.name == n.embedding
            result.append(ops.ReplaceColumn(n.schema, n.table, col.name, live.type, col.type,
                                            pipeline=c.name))
    result.extend(_index_ops(c, state, table, replaced))
    return result


def _index_ops(c: ddl.CompiledPipeline, state: LiveState, table: LiveTable,
               column_replaced: bool) -> list[ops.Operation]:
    n, want = c.names, c.index
    rec = _ours(c.pipeline, state)
    recorded = rec.index_name if rec else None
    result: list[ops.Operation] = []
    if recorded and recorded in table.indexes and (want is None or recorded != want.name):
        result.append(ops.DropIndex(n.schema, recorded, "no longer wanted", pipeline=c.name))
    if want is None:
        return result
    live = table.indexes.get(want.name)
    if live is not None and not column_replaced:
        problem = _index_problem(live, want)
        if problem is None:
            return result
        result.append(ops.DropIndex(n.schema, want.name, problem, pipeline=c.name))
    result.append(ops.CreateIndex(n.schema, n.table, want, pipeline=c.name))
    return result


def _index_problem(live: LiveIndex, want: ddl.IndexDef) -> str | None:
    if not live.valid:
        return "invalid, left by a failed concurrent build"
    options = {f"{k}={v}" for k, v in want.options}
    if (live.method, live.columns, live.opclasses, set(live.options)) != (
            "hnsw", (want.column,), (want.opclass,), options):
        return "definition changed"
    return None


def _trigger_ops(group: Sequence[ddl.CompiledPipeline], wanted: Sequence[ddl.TriggerDef],
                 table: LiveTable) -> list[ops.Operation]:
    label = ", ".join(c.name for c in group)
    schema, name = group[0].names.schema, group[0].names.table
    result: list[ops.Operation] = []
    wanted_names = {t.name for t in wanted}
    for live in table.triggers.values():
        if live.is_v10r and live.name not in wanted_names:
            result.append(ops.DropTrigger(schema, name, live.name, pipeline=label))
    for t in wanted:
        live = table.triggers.get(t.name)
        if live is None or live.marker != t.marker:
            result.append(ops.CreateTrigger(schema, name, t, replace=live is not None,
                                            pipeline=label))
    return result


def _record_op(c: ddl.CompiledPipeline, triggers: dict[tuple[str, str], tuple[str, ...]],
               state: LiveState) -> ops.RecordPipeline | None:
    n = c.names
    names = triggers[(n.schema, n.table)]
    rec = state.recorded.get(c.name)
    wanted = Recorded(c.name, c.pipeline.database.name, n.schema, n.table, n.embedding,
                      tuple(col.name for col in c.columns), c.index.name if c.index else None,
                      names, c.definition_hash, c.fingerprint, c.pipeline.dimensions,
                      c.pipeline.model)
    return None if rec == wanted else ops.RecordPipeline(c, names, pipeline=c.name)


# --- pipelines no longer in the specs --------------------------------------------------

def _removed(pipelines: Sequence[Pipeline], state: LiveState,
             kept_tables: dict[tuple[str, str], list[ddl.CompiledPipeline]], prune: bool,
             drop_columns: bool) -> tuple[list[ops.Operation], tuple[PipelinePlan, ...]]:
    wanted = {p.name for p in pipelines}
    result: list[ops.Operation] = []
    plans: list[PipelinePlan] = []
    for rec in sorted(state.recorded.values(), key=lambda r: r.name):
        if rec.name in wanted:
            continue
        table = state.table(rec.schema, rec.table)
        label = f"{rec.schema}.{rec.table}"
        if not prune:
            plans.append(PipelinePlan(rec.name, label, "removed", rec.embedding_column,
                                      notes=(("not in the specs; `--prune` removes its "
                                             "triggers, index and bookkeeping"),)))
            continue
        result.extend(_removal_ops(rec, table, (rec.schema, rec.table) in kept_tables,
                                   drop_columns))
        plans.append(PipelinePlan(rec.name, label, "drop", rec.embedding_column))
    return result, tuple(plans)


def _removal_ops(rec: Recorded, table: LiveTable | None, table_still_watched: bool,
                 drop_columns: bool) -> list[ops.Operation]:
    result: list[ops.Operation] = []
    if table is not None:
        if rec.index_name and rec.index_name in table.indexes:
            result.append(ops.DropIndex(rec.schema, rec.index_name, "pipeline removed",
                                        pipeline=rec.name))
        if not table_still_watched:
            for name in rec.triggers:
                if name in table.triggers and table.triggers[name].is_v10r:
                    result.append(ops.DropTrigger(rec.schema, rec.table, name,
                                                  pipeline=rec.name))
        if drop_columns:
            result.extend(ops.DropColumn(rec.schema, rec.table, col, pipeline=rec.name)
                          for col in rec.columns if col in table.columns)
    kept = () if drop_columns or table is None else tuple(
        c for c in rec.columns if c in table.columns)
    result.append(ops.ForgetPipeline(rec.name, kept, pipeline=rec.name))
    return result


def _moved_ops(c: ddl.CompiledPipeline, state: LiveState,
               kept_tables: dict[tuple[str, str], list[ddl.CompiledPipeline]]
               ) -> list[ops.Operation]:
    """A pipeline pointed at another table: its index and triggers leave the old one
    (the old columns stay, as data)."""
    rec = state.recorded.get(c.name)
    if rec is None or (rec.schema, rec.table) == (c.names.schema, c.names.table):
        return []
    old = state.table(rec.schema, rec.table)
    return _removal_ops(rec, old, (rec.schema, rec.table) in kept_tables, False)[:-1]


def _summary(c: ddl.CompiledPipeline, operations: Sequence[ops.Operation],
             state: LiveState) -> PipelinePlan:
    mine = [op for op in operations if op.pipeline and c.name in op.pipeline.split(", ")]
    action = "create" if c.name not in state.recorded else ("alter" if mine else "unchanged")
    renamed = c.pipeline.embedding_column if c.names.embedding != c.pipeline.embedding_column \
        else None
    notes = []
    if renamed:
        notes.append(f"column {renamed} is taken: using {c.names.embedding}")
    rec = state.recorded.get(c.name)
    if rec and (rec.schema, rec.table, rec.embedding_column) != (
            c.names.schema, c.names.table, c.names.embedding):
        notes.append(f"previously applied to {rec.schema}.{rec.table}.{rec.embedding_column}: "
                     "those columns are kept as plain data (drop them yourself)")
    if rec and rec.fingerprint != c.fingerprint:
        notes.append("model, dimensions or preprocessing changed: every row is re-embedded")
    return PipelinePlan(c.name, c.names.display_table, action, c.names.embedding, renamed,
                        tuple(notes))
