"""One pipeline's columns and index: add, adopt, rename, re-embed, cut over. Pure.

Ownership comes from the catalog: a column or index is v10r's when it carries the marker
`v10r:<pipeline>:<role>` (a comment only the table's owner can set). Objects an older
v10r created carry none; they are adopted (marked) only where the bookkeeping and the
catalog agree on name and type. Anything else is refused, never altered.

Re-embedding. A change that invalidates the vectors (the fingerprint of
`compile.content_hash` or the vector type) is blue/green by default: the new vectors are
written into `<col>_v10r_next` (with its own metadata), the old column keeps serving;
once every row is current there, `v10r apply` swaps them in one transaction by renaming
(old → `<col>_v10r_old`, marked retired; next → `<col>`). `target.reembed: in_place`
re-embeds into the column itself; a type change then drops the vectors *and* the hashes,
so that every row is counted as pending.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from v10r.compile import ddl
from v10r.compile.names import (
    INDEX_ROLE,
    RETIRED,
    ROLES,
    PipelineNames,
    column_roles,
    marker,
    next_column,
    parse_marker,
    pipeline_names,
    retired_column,
)
from v10r.errors import PlanError
from v10r.reconcile import ops
from v10r.reconcile.introspect import LiveColumn, LiveIndex, LiveTable, Recorded

VECTOR_TYPES = ("vector", "halfvec")
DEFAULT_INDEX_AFTER_ROWS = 10_000


@dataclass(frozen=True, slots=True)
class Fill:
    """How far the column being filled is: rows pending of the rows the filter matches."""

    pending: int
    total: int

    @property
    def complete(self) -> bool:
        return self.pending == 0


@dataclass(frozen=True, slots=True)
class ColumnPlan:
    operations: list[ops.Operation]
    row: Recorded  # the bookkeeping row once these operations ran
    notes: tuple[str, ...] = ()
    filling: PipelineNames | None = None  # where workers write, when not the serving column
    from_scratch: bool = False  # the filled column starts empty: every row is to embed
    phases: tuple[str, ...] = field(default=())


def fill_names(c: ddl.CompiledPipeline, rec: Recorded | None) -> PipelineNames:
    """The names workers write to: the next column during a re-embedding."""
    if rec is not None and rec.next_column and (rec.schema, rec.table) == (
            c.names.schema, c.names.table):
        return pipeline_names(c.pipeline, rec.next_column)
    return c.names


def plan_columns(c: ddl.CompiledPipeline, table: LiveTable, rec: Recorded | None,
                 base: Recorded, fill: Fill | None, index_after_rows: int) -> ColumnPlan:
    """Operations for `c`'s columns and index; `rec` is its bookkeeping row on this table,
    `base` the row to record when nothing else changes."""
    result: list[ops.Operation] = []
    if rec is not None and rec.embedding_column != c.names.embedding:
        rename, table, rec = _rename(c, table, rec)
        if rename.sql:
            result.append(rename)
    result.extend(_adopt(c, c.names, table, rec))
    serving = table.columns.get(c.names.embedding)
    invalid = rec is not None and serving is not None and (
        serving.type != c.columns[0].type or rec.fingerprint != c.fingerprint)
    migrating = rec is not None and rec.next_column is not None
    if c.pipeline.target.reembed == "in_place" or not (invalid or migrating):
        return _in_place(c, table, rec, base, fill, index_after_rows, result)
    assert rec is not None
    return _blue_green(c, table, rec, base, fill, index_after_rows, result)


# --- ownership --------------------------------------------------------------------------

def _type_agrees(live: LiveColumn, role: str) -> bool:
    if role == "embedding":
        return live.base_type in VECTOR_TYPES
    return live.type == ddl.METADATA_TYPES[ROLES.index(role) - 1]


def _adopt(c: ddl.CompiledPipeline, names: PipelineNames, table: LiveTable,
           rec: Recorded | None) -> list[ops.Operation]:
    """Mark unmarked columns and index of an older v10r, where bookkeeping and catalog
    agree; refuse a column whose marker says it belongs to something else."""
    result: list[ops.Operation] = []
    for col, role in column_roles(names).items():
        live = table.columns.get(col)
        if live is None or parse_marker(live.comment) == (c.name, role):
            continue
        if not _adoptable(live, role, rec):
            raise _not_ours(c.name, names, live)
        result.append(ops.MarkColumn(names.schema, names.table, col, marker(c.name, role),
                                     "adopting a column an older v10r created",
                                     pipeline=c.name))
    index = table.indexes.get(names.index)
    if rec is not None and index is not None and rec.index_name == names.index \
            and index.comment is None and index.method == "hnsw" \
            and index.columns == (names.embedding,):
        result.append(ops.MarkIndex(names.schema, names.index, marker(c.name, INDEX_ROLE),
                                    "adopting an index an older v10r created",
                                    pipeline=c.name))
    return result


def _adoptable(live: LiveColumn, role: str, rec: Recorded | None) -> bool:
    """An unmarked column an older v10r created: bookkeeping and catalog agree."""
    return parse_marker(live.comment) is None and rec is not None \
        and live.name in rec.columns and _type_agrees(live, role)


def _not_ours(pipeline: str, names: PipelineNames, live: LiveColumn) -> PlanError:
    return PlanError(
        f"column {names.display_table}.{live.name} is not marked as v10r's for this pipeline "
        f"(comment: {live.comment!r}, type {live.type}); v10r never alters it",
        pipeline=pipeline, obj=f"{names.display_table}.{live.name}",
        hint="if v10r.pipelines was edited, restore it; otherwise set `target.column` to a "
        "free name")


def owns_index(pipeline: str, index: LiveIndex, table: LiveTable) -> bool:
    """An index is the pipeline's when marked so, or (unmarked: a failed concurrent build
    or an older v10r) when it is an HNSW index on one of the pipeline's marked columns."""
    if index.comment is not None:
        return parse_marker(index.comment) == (pipeline, INDEX_ROLE)
    if index.method != "hnsw" or len(index.columns) != 1:
        return False
    column = table.columns.get(index.columns[0])
    mark = parse_marker(column.comment) if column else None
    return mark is not None and mark[0] == pipeline and mark[1] in ("embedding", RETIRED)


def owns_column(pipeline: str, live: LiveColumn | None, roles: tuple[str, ...]) -> bool:
    mark = parse_marker(live.comment) if live else None
    return mark is not None and mark[0] == pipeline and mark[1] in roles


# --- one column set -----------------------------------------------------------------------

def _ensure(c: ddl.CompiledPipeline, table: LiveTable, serving: bool = True
            ) -> tuple[list[ops.Operation], bool]:
    """Add the missing columns of `c`, replace those of the wrong type (a replaced vector
    column resets the hash too, so no row looks current without a vector)."""
    n = c.names
    renamed_from = c.pipeline.embedding_column if serving and \
        n.embedding != c.pipeline.embedding_column else None
    result: list[ops.Operation] = []
    replaced = False
    for col, role in zip(c.columns, ROLES, strict=True):
        live = table.columns.get(col.name)
        mark = marker(c.name, role)
        if live is None:
            result.append(ops.AddColumn(n.schema, n.table, col.name, col.type, mark,
                                        renamed_from if role == "embedding" else None,
                                        pipeline=c.name))
        elif live.type != col.type or (replaced and role == "hash"):
            replaced = replaced or role == "embedding"
            result.append(ops.ReplaceColumn(n.schema, n.table, col.name, live.type, col.type,
                                            mark, pipeline=c.name))
    return result, replaced


def _index(c: ddl.CompiledPipeline, table: LiveTable, rec: Recorded | None,
           column_new: bool, fill: Fill | None, index_after_rows: int
           ) -> tuple[list[ops.Operation], tuple[str, ...]]:
    n, want = c.names, c.index
    result: list[ops.Operation] = []
    recorded = rec.index_name if rec else None
    if recorded and recorded in table.indexes and (want is None or recorded != want.name) \
            and owns_index(c.name, table.indexes[recorded], table):
        result.append(ops.DropIndex(n.schema, recorded, "no longer wanted", pipeline=c.name))
    if want is None:
        return result, ()
    live = table.indexes.get(want.name)
    if live is not None and not column_new:
        problem = _index_problem(live, want)
        if problem is None:
            return result, ()
        result.append(ops.DropIndex(n.schema, want.name, problem, invalid=not live.valid,
                                    pipeline=c.name))
    if defer_index(table, column_new, fill, index_after_rows):
        return result, ((f"HNSW index {want.name} is built after the initial fill "
                        f"(~{table.rows_estimate:,} rows): run `v10r apply` again when "
                        "`v10r status` shows the column complete"),)
    result.append(ops.CreateIndex(n.schema, n.table, want, marker(c.name, INDEX_ROLE),
                                  pipeline=c.name))
    return result, ()


def defer_index(table: LiveTable, column_new: bool, fill: Fill | None,
                index_after_rows: int) -> bool:
    """A large table's index is built once its column is (nearly) filled: writing 20k
    vectors into an HNSW index is ~10x slower than building the index afterwards."""
    if table.rows_estimate < index_after_rows:
        return False
    if column_new or fill is None:
        return True
    return fill.pending * 10 > fill.total


def _index_problem(live: LiveIndex, want: ddl.IndexDef) -> str | None:
    if not live.valid:
        return "invalid, left by a failed concurrent build"
    options = {f"{k}={v}" for k, v in want.options}
    if (live.method, live.columns, live.opclasses, set(live.options)) != (
            "hnsw", (want.column,), (want.opclass,), options):
        return "definition changed"
    return None


def _in_place(c: ddl.CompiledPipeline, table: LiveTable, rec: Recorded | None, base: Recorded,
              fill: Fill | None, index_after_rows: int, result: list[ops.Operation]
              ) -> ColumnPlan:
    ensured, replaced = _ensure(c, table)
    result.extend(ensured)
    new = c.names.embedding not in table.columns or replaced
    if rec is not None and rec.next_column:  # switched to in_place mid-way: drop the next set
        result.extend(ops.DropColumn(c.names.schema, c.names.table, col, pipeline=c.name)
                      for col in column_roles(pipeline_names(c.pipeline, rec.next_column))
                      if col in table.columns)
    index_ops, notes = _index(c, table, rec, new, fill, index_after_rows)
    result.extend(index_ops)
    if replaced:
        notes += (("the vector type changed: vectors and hashes are reset and every row is "
                  "re-embedded in place"),)
    elif rec is not None and rec.fingerprint != c.fingerprint:
        notes += (("model, dimensions or preprocessing changed: every row is re-embedded in "
                  "place (queries see old and new vectors mixed until it ends)"),)
    row = replace(base, next_column=None, next_fingerprint=None,
                  columns=_owned(c, rec, ()))
    return ColumnPlan(result, row, notes, from_scratch=new)


def _owned(c: ddl.CompiledPipeline, rec: Recorded | None, extra: tuple[str, ...]
           ) -> tuple[str, ...]:
    """Every column the pipeline owns: serving set, next set, retired sets."""
    cols = [*column_roles(c.names), *extra]
    for old in rec.retired if rec else ():
        cols.extend(column_roles(pipeline_names(c.pipeline, old)))
    return tuple(dict.fromkeys(cols))


# --- blue/green ----------------------------------------------------------------------------

def _blue_green(c: ddl.CompiledPipeline, table: LiveTable, rec: Recorded, base: Recorded,
                fill: Fill | None, index_after_rows: int, result: list[ops.Operation]
                ) -> ColumnPlan:
    nxt = ddl.compile_pipeline(c.pipeline, rec.next_column or next_column(c.names.embedding))
    nxt = replace(nxt, names=replace(nxt.names, trigger=c.names.trigger,
                                     bulk_trigger=c.names.bulk_trigger))
    result.extend(_adopt(c, nxt.names, table, rec))
    serving = table.columns.get(c.names.embedding)
    if serving is not None and serving.type == c.columns[0].type \
            and rec.fingerprint == c.fingerprint:
        # Back to what the serving column holds: the unfinished next column goes.
        result.extend(ops.DropColumn(c.names.schema, c.names.table, col, pipeline=c.name)
                      for col in column_roles(nxt.names) if col in table.columns)
        row = replace(base, fingerprint=rec.fingerprint, next_column=None,
                      next_fingerprint=None, columns=_owned(c, rec, ()))
        return ColumnPlan(result, row, (("the spec is back to what the column holds: the "
                                        "unfinished re-embedding is dropped"),))
    # Changed again mid-way: the next column's hashes no longer match the new fingerprint,
    # so every row counts as pending again without resetting anything.
    restart = rec.next_column is not None and rec.next_fingerprint != c.fingerprint
    ensured, replaced = _ensure(nxt, table, serving=False)
    result.extend(ensured)
    started = rec.next_column is None or restart or bool(ensured)
    from_scratch = rec.next_column is None or replaced
    row = replace(base, fingerprint=rec.fingerprint, next_column=nxt.names.embedding,
                  next_fingerprint=c.fingerprint,
                  columns=_owned(c, rec, tuple(column_roles(nxt.names))))
    phases = ((f"1. build: add {nxt.names.embedding} {nxt.columns[0].type} beside "
              f"{c.names.embedding} (which keeps serving queries)"),
              f"2. fill: the workers embed every row into {nxt.names.embedding}",
              (f"3. cut over: `v10r apply` swaps the columns in one transaction once the fill "
              f"is complete (old vectors kept as {retired_column(c.names.embedding, 1)})"))
    if started or fill is None or not fill.complete:
        done = "" if fill is None or started else \
            f" ({fill.total - fill.pending:,}/{fill.total:,} rows done)"
        note = f"re-embedding blue/green into {nxt.names.embedding}{done}"
        return ColumnPlan(result, row, (note,), nxt.names, from_scratch=from_scratch,
                          phases=phases)
    if nxt.index is not None:
        live = table.indexes.get(nxt.index.name)
        if live is None or _index_problem(live, nxt.index) is not None:
            if live is not None:
                result.append(ops.DropIndex(c.names.schema, nxt.index.name,
                                            _index_problem(live, nxt.index) or "rebuilt",
                                            invalid=not live.valid, pipeline=c.name))
            result.append(ops.CreateIndex(c.names.schema, c.names.table, nxt.index,
                                          marker(c.name, INDEX_ROLE), pipeline=c.name))
            return ColumnPlan(result, row, (("re-embedding complete: building the new "
                                            "column's index, then cutting over"),),
                              nxt.names)
    cut, retired = _cutover(c, nxt, table, rec)
    result.append(cut)
    row = replace(base, fingerprint=c.fingerprint, next_column=None, next_fingerprint=None,
                  retired=(*rec.retired, retired),
                  columns=_owned(c, replace(rec, retired=(*rec.retired, retired)), ()))
    return ColumnPlan(result, row, ("re-embedding complete: cutting over",))


def _cutover(c: ddl.CompiledPipeline, nxt: ddl.CompiledPipeline, table: LiveTable,
             rec: Recorded) -> tuple[ops.Operation, str]:
    """One transaction: old set → retired names (marked retired), next set → the names
    queries use. Renames take a brief lock and rewrite nothing."""
    old, new = c.names, nxt.names
    generation = 1
    while any(col in table.columns for col in column_roles(
            pipeline_names(c.pipeline, retired_column(old.embedding, generation)))):
        generation += 1
    gone = pipeline_names(c.pipeline, retired_column(old.embedding, generation))
    retire = [(a, b) for a, b in zip(column_roles(old), column_roles(gone), strict=True)
              if a in table.columns]
    renames = [*retire, *zip(column_roles(new), column_roles(old), strict=True)]
    index_renames = []
    if old.index in table.indexes:
        index_renames.append((old.index, gone.index))
    if nxt.index is not None and new.index in table.indexes:
        index_renames.append((new.index, old.index))
    marks = tuple((col, marker(c.name, RETIRED)) for _, col in retire)
    summary = (f"cut over {old.display_table}.{old.embedding}: the re-embedded "
               f"{new.embedding} takes its name; the old vectors move to {gone.embedding} "
               "(`--drop-columns` drops them)")
    return ops.RenameColumns(old.schema, old.table, tuple(renames), tuple(index_renames),
                             marks, summary, pipeline=c.name), gone.embedding


def _rename(c: ddl.CompiledPipeline, table: LiveTable, rec: Recorded
            ) -> tuple[ops.Operation, LiveTable, Recorded]:
    """`target.column` changed: rename the old set (vectors stay valid) instead of
    re-embedding into new columns."""
    if rec.next_column:
        raise PlanError(f"cannot rename {rec.embedding_column} while it is being re-embedded",
                        pipeline=c.name, hint="let the re-embedding finish (`v10r apply` "
                        "cuts over), then rename")
    old = pipeline_names(c.pipeline, rec.embedding_column)
    pairs = [(a, b) for a, b in zip(column_roles(old), column_roles(c.names), strict=True)
             if a in table.columns]
    roles = column_roles(old)
    for a, _ in pairs:  # never rename a column the catalog does not say is ours
        live = table.columns[a]
        if parse_marker(live.comment) != (c.name, roles[a]) \
                and not _adoptable(live, roles[a], rec):
            raise _not_ours(c.name, old, live)
    index_pairs = [(old.index, c.names.index)] if old.index in table.indexes and \
        rec.index_name == old.index else []
    op = ops.RenameColumns(c.names.schema, c.names.table, tuple(pairs), tuple(index_pairs),
                           pipeline=c.name)
    columns = dict(table.columns)
    for a, b in pairs:
        columns[b] = replace(columns.pop(a), name=b)
    indexes = dict(table.indexes)
    moved = dict(pairs)
    for a, b in index_pairs:
        index = indexes.pop(a)
        indexes[b] = replace(index, name=b, columns=tuple(moved.get(x, x) for x in index.columns))
    rec = replace(rec, embedding_column=c.names.embedding,
                  columns=tuple(moved.get(x, x) for x in rec.columns),
                  index_name=c.names.index if index_pairs else rec.index_name)
    return op, replace(table, columns=columns, indexes=indexes), rec


def fill_needed(c: ddl.CompiledPipeline, table: LiveTable, rec: Recorded | None,
                index_after_rows: int) -> bool:
    """Whether planning `c` needs its fill counts (a query): during a re-embedding, or
    while a large table's index waits for the fill."""
    if rec is not None and rec.next_column is not None:
        return True
    return c.index is not None and c.index.name not in table.indexes \
        and table.rows_estimate >= index_after_rows
