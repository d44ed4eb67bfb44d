"""Desired objects vs live state → the operations that close the gap. Pure.

Rules: v10r touches only what its bookkeeping says is v10r's (or, for triggers, what
calls `v10r.v10r_notify()`); a user's object under a wanted name is a collision, never
altered. Problems with the user's tables raise `PlanError` before anything is planned.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from v10r.compile import ddl
from v10r.compile.names import RETIRED, ROLES, PipelineNames, column_roles, pipeline_names
from v10r.errors import PlanError
from v10r.reconcile import ops
from v10r.reconcile.checks import check_pipeline, check_shared
from v10r.reconcile.columns import (
    DEFAULT_INDEX_AFTER_ROWS,
    ColumnPlan,
    Fill,
    owns_column,
    owns_index,
    plan_columns,
)
from v10r.reconcile.introspect import LiveState, LiveTable, Recorded
from v10r.reconcile.specset import SpecSet
from v10r.spec.columns import RENAME_SUFFIX
from v10r.spec.identifiers import derive_name
from v10r.spec.model import Pipeline


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
    phases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Filling:
    """Where a pipeline's rows are embedded after this plan, for the rows-to-embed count."""

    names: PipelineNames
    from_scratch: bool  # the column starts empty: every row counts


@dataclass(frozen=True, slots=True)
class DatabasePlan:
    database: str  # the spec's logical database name
    operations: tuple[ops.Operation, ...]
    pipelines: tuple[PipelinePlan, ...]
    compiled: tuple[ddl.CompiledPipeline, ...] = field(default=(), repr=False)
    filling: dict[str, Filling] = field(default_factory=dict, repr=False)

    @property
    def has_changes(self) -> bool:
        return bool(self.operations)


@dataclass(frozen=True, slots=True)
class DiffOptions:
    prune: bool = False
    drop_columns: bool = False
    spec_set: SpecSet = field(default_factory=SpecSet)
    fills: dict[str, Fill] = field(default_factory=dict)  # by pipeline: the filled column
    index_after_rows: int = DEFAULT_INDEX_AFTER_ROWS


def diff(pipelines: Sequence[Pipeline], state: LiveState, options: DiffOptions | None = None,
         *, database: str | None = None) -> DatabasePlan:
    """The plan for one database. Raises `PlanError` when the specs cannot be applied."""
    opt = options or DiffOptions()
    check_shared(pipelines, state)
    for p in pipelines:
        check_pipeline(p, state)
    compiled = resolve_names(pipelines, state)
    shared = _shared_ops(state)
    by_table: dict[tuple[str, str], list[ddl.CompiledPipeline]] = defaultdict(list)
    for c in compiled:
        by_table[(c.names.schema, c.names.table)].append(c)
    trigger_ops: list[ops.Operation] = []
    trigger_names: dict[tuple[str, str], tuple[str, ...]] = {}
    for ref, group in by_table.items():
        wanted = ddl.table_triggers(group)
        trigger_names[ref] = tuple(t.name for t in wanted)
        trigger_ops.extend(_trigger_ops(group, wanted, state.tables[ref]))
    per_pipeline: list[ops.Operation] = []
    records: list[ops.Operation] = []
    plans: dict[str, ColumnPlan] = {}
    for c in compiled:
        plan = _pipeline_plan(c, state, trigger_names, opt)
        plans[c.name] = plan
        per_pipeline.extend(plan.operations)
        if state.recorded.get(c.name) != plan.row:
            records.append(ops.RecordPipeline(plan.row, pipeline=c.name))
    moved = [op for c in compiled for op in _moved_ops(c, state, by_table)]
    removed, removed_plans = _removed(pipelines, state, by_table, opt)
    operations = (*shared, *per_pipeline, *trigger_ops, *moved, *removed, *records)
    summaries = tuple(_summary(c, operations, state, plans[c.name]) for c in compiled) \
        + removed_plans
    filling = {c.name: Filling(plans[c.name].filling or c.names, plans[c.name].from_scratch)
               for c in compiled}
    name = database or (pipelines[0].database.name if pipelines else state.database)
    return DatabasePlan(name, tuple(operations), summaries, tuple(compiled), filling)


def _pipeline_plan(c: ddl.CompiledPipeline, state: LiveState,
                   triggers: dict[tuple[str, str], tuple[str, ...]], opt: DiffOptions
                   ) -> ColumnPlan:
    n = c.names
    table = state.tables[(n.schema, n.table)]
    rec = _ours(c.pipeline, state)
    base = Recorded(c.name, c.pipeline.database.name, n.schema, n.table, n.embedding,
                    tuple(col.name for col in c.columns), c.index.name if c.index else None,
                    triggers[(n.schema, n.table)], c.definition_hash, c.fingerprint,
                    c.pipeline.dimensions, c.pipeline.model,
                    opt.spec_set.source(c.name) or (rec.spec_source if rec else None),
                    retired=rec.retired if rec else ())
    plan = plan_columns(c, table, rec, base, opt.fills.get(c.name), opt.index_after_rows)
    if opt.drop_columns and plan.row.retired:
        drops = _drop_retired(c, table, plan.row)
        kept = set(plan.row.columns) - {op.column for op in drops}
        row = replace(plan.row, retired=(), columns=tuple(
            col for col in plan.row.columns if col in kept))
        plan = replace(plan, operations=[*plan.operations, *drops], row=row)
    return plan


def _drop_retired(c: ddl.CompiledPipeline, table: LiveTable, row: Recorded
                  ) -> list[ops.DropColumn]:
    """Old vectors kept after a cutover, dropped on request: each must carry the
    retired marker of this pipeline (bookkeeping alone is never trusted)."""
    result = []
    for old in row.retired:
        for col in column_roles(pipeline_names(c.pipeline, old)):
            live = table.columns.get(col)
            if live is None:
                continue
            if not owns_column(c.name, live, (RETIRED,)):
                raise _not_marked(c.name, f"{table.schema}.{table.table}.{col}", live.comment)
            result.append(ops.DropColumn(table.schema, table.table, col, pipeline=c.name))
    return result


def _not_marked(pipeline: str, obj: str, comment: str | None) -> PlanError:
    return PlanError(
        f"refusing to drop {obj}: it does not carry v10r's marker for pipeline "
        f"{pipeline!r} (comment: {comment!r})", pipeline=pipeline, obj=obj,
        hint="v10r.pipelines does not match the catalog (was it edited?); restore the row, "
        "or remove the object yourself if it really is v10r's")


def _shared_ops(state: LiveState) -> list[ops.Operation]:
    result: list[ops.Operation] = []
    if not (state.schema_exists and state.bookkeeping_exists and state.backfill_exists):
        result.append(ops.CreateSchema())  # every statement IF NOT EXISTS: fills gaps
    if state.bookkeeping_exists and state.bookkeeping_columns:
        missing = tuple(name for name, _ in ddl.BOOKKEEPING_UPGRADES
                        if name not in state.bookkeeping_columns)
        if missing:
            result.append(ops.UpgradeBookkeeping(missing))
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
        live = table.columns.get(col)
        # Columns kept by a prune carry this pipeline's marker: re-applying adopts them.
        if live is not None and col not in mine_cols and not owns_column(p.name, live, ROLES):
            return f"column {names.display_table}.{col}"
    index = table.indexes.get(names.index)
    index_mine = index is not None and (
        (rec is not None and rec.index_name == names.index) or owns_index(p.name, index, table))
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


# --- triggers ------------------------------------------------------------------------

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


# --- pipelines no longer in the specs --------------------------------------------------

def _removed(pipelines: Sequence[Pipeline], state: LiveState,
             kept_tables: dict[tuple[str, str], list[ddl.CompiledPipeline]], opt: DiffOptions
             ) -> tuple[list[ops.Operation], tuple[PipelinePlan, ...]]:
    wanted = {p.name for p in pipelines}
    result: list[ops.Operation] = []
    plans: list[PipelinePlan] = []
    for rec in sorted(state.recorded.values(), key=lambda r: r.name):
        if rec.name in wanted:
            continue
        table = state.table(rec.schema, rec.table)
        label = f"{rec.schema}.{rec.table}"
        if not opt.spec_set.owns(rec.spec_source):
            source = rec.spec_source or "unknown (applied before v10r recorded spec files)"
            plans.append(PipelinePlan(rec.name, label, "other", rec.embedding_column, notes=(
                (f"belongs to another spec set ({source}): never pruned from "
                f"{opt.spec_set.describe()}; prune it with the specs it was applied from"),)))
            continue
        if not opt.prune:
            plans.append(PipelinePlan(rec.name, label, "removed", rec.embedding_column,
                                      notes=(("not in the specs; `--prune` removes its "
                                             "triggers, index and bookkeeping"),)))
            continue
        result.extend(_removal_ops(rec, table, (rec.schema, rec.table) in kept_tables,
                                   opt.drop_columns))
        plans.append(PipelinePlan(rec.name, label, "drop", rec.embedding_column))
    return result, tuple(plans)


def _removal_ops(rec: Recorded, table: LiveTable | None, table_still_watched: bool,
                 drop_columns: bool) -> list[ops.Operation]:
    """Every object is checked against the catalog first: a bookkeeping row alone (which
    another role may have edited) never gets anything dropped."""
    result: list[ops.Operation] = []
    if table is not None:
        index = table.indexes.get(rec.index_name) if rec.index_name else None
        if index is not None:
            if not owns_index(rec.name, index, table):
                raise _not_marked(rec.name, f"index {rec.schema}.{index.name}", index.comment)
            result.append(ops.DropIndex(rec.schema, index.name, "pipeline removed",
                                        pipeline=rec.name))
        if not table_still_watched:
            for name in rec.triggers:
                if name in table.triggers and table.triggers[name].is_v10r:
                    result.append(ops.DropTrigger(rec.schema, rec.table, name,
                                                  pipeline=rec.name))
        if drop_columns:
            for col in rec.columns:
                live = table.columns.get(col)
                if live is None:
                    continue
                if not owns_column(rec.name, live, (*ROLES, RETIRED)):
                    raise _not_marked(rec.name, f"column {rec.schema}.{rec.table}.{col}",
                                      live.comment)
                result.append(ops.DropColumn(rec.schema, rec.table, col, pipeline=rec.name))
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
             state: LiveState, plan: ColumnPlan) -> PipelinePlan:
    mine = [op for op in operations if op.pipeline and c.name in op.pipeline.split(", ")]
    action = "create" if c.name not in state.recorded else ("alter" if mine else "unchanged")
    renamed = c.pipeline.embedding_column if c.names.embedding != c.pipeline.embedding_column \
        else None
    notes = []
    if renamed:
        notes.append(f"column {renamed} is taken: using {c.names.embedding}")
    rec = state.recorded.get(c.name)
    if rec and (rec.schema, rec.table) != (c.names.schema, c.names.table):
        notes.append(f"previously applied to {rec.schema}.{rec.table}.{rec.embedding_column}: "
                     "those columns are kept as plain data (drop them yourself)")
    if rec and rec.spec_source and plan.row.spec_source != rec.spec_source:
        notes.append(f"previously applied from {rec.spec_source}")
    notes.extend(plan.notes)
    return PipelinePlan(c.name, c.names.display_table, action, c.names.embedding, renamed,
                        tuple(notes), phases=plan.phases)
