"""Which columns of the user's table a pipeline reads and which it writes.

The spec check needs this before anything is compiled: two pipelines on one table must
never write the same column, nor write a column that one of them reads (a target named
like another pipeline's `_hash` column, or like its source text), or they corrupt each
other at run time. The suffixes live here, the lowest layer that needs them;
`v10r.compile.names` and the reconciler derive their names from them too.
"""

from __future__ import annotations

from dataclasses import dataclass

from v10r.spec.identifiers import derive_name
from v10r.spec.model import Pipeline

METADATA_SUFFIXES = {"model": "_model", "hash": "_hash", "at": "_at", "note": "_note"}
RENAME_SUFFIX = "_v10r"  # what `target.on_collision: rename` falls back to


@dataclass(frozen=True, slots=True)
class ColumnUse:
    column: str
    role: str  # e.g. "embedding column", "hash column", "source column"


def written_columns(pipeline: Pipeline) -> list[ColumnUse]:
    """Every column `pipeline` may create and write, with the renamed variant if allowed."""
    bases = [(pipeline.embedding_column, "")]
    if pipeline.target.on_collision == "rename":
        bases.append((derive_name(pipeline.embedding_column, RENAME_SUFFIX), "renamed "))
    uses = []
    for base, renamed in bases:
        uses.append(ColumnUse(base, f"{renamed}embedding column"))
        uses += [ColumnUse(derive_name(base, suffix), f"{renamed}{role} column")
                 for role, suffix in METADATA_SUFFIXES.items()]
    return uses


def read_columns(pipeline: Pipeline) -> list[ColumnUse]:
    """Every column of the user's own data the pipeline depends on."""
    source = pipeline.source
    return ([ColumnUse(c, "source column") for c in source.columns]
            + [ColumnUse(c, "key column") for c in source.key]
            + [ColumnUse(c.column, "filter column") for c in source.filter])


def table_of(pipeline: Pipeline) -> tuple[str, str, str]:
    return (pipeline.database.name, pipeline.source.schema_name, pipeline.source.table_name)
