"""Names of everything v10r creates for a pipeline, derived once and deterministically.

Every layer (DDL, listener, worker, catch-up, status) asks this module, so a name is
never spelled twice. Long names are shortened within PostgreSQL's 63-byte limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from v10r.spec.columns import METADATA_SUFFIXES
from v10r.spec.identifiers import derive_name, qualified, quote_ident
from v10r.spec.model import Pipeline

V10R_SCHEMA = "v10r"
NOTIFY_FUNCTION = "v10r_notify"
BOOKKEEPING_TABLE = "pipelines"


@dataclass(frozen=True, slots=True)
class PipelineNames:
    """Unquoted names; use the `q_*` helpers (or `quote_ident`) to put them in SQL."""

    schema: str
    table: str
    key: tuple[str, ...]
    columns: tuple[str, ...]
    embedding: str
    model: str
    hash: str
    at: str
    note: str
    index: str
    trigger: str
    bulk_trigger: str
    channel: str

    @property
    def qualified_table(self) -> str:
        """`"schema"."table"`, quoted, for SQL."""
        return qualified(self.schema, self.table)

    @property
    def display_table(self) -> str:
        """`schema.table` as carried in notifications and task messages."""
        return f"{self.schema}.{self.table}"

    @property
    def metadata_columns(self) -> tuple[str, str, str, str]:
        return (self.model, self.hash, self.at, self.note)


def pipeline_names(pipeline: Pipeline, embedding_column: str | None = None) -> PipelineNames:
    """Names for `pipeline`; pass `embedding_column` when a collision renamed it."""
    source = pipeline.source
    embedding = embedding_column or pipeline.embedding_column
    return PipelineNames(
        schema=source.schema_name,
        table=source.table_name,
        key=tuple(source.key),
        columns=tuple(source.columns),
        embedding=embedding,
        model=derive_name(embedding, METADATA_SUFFIXES["model"]),
        hash=derive_name(embedding, METADATA_SUFFIXES["hash"]),
        at=derive_name(embedding, METADATA_SUFFIXES["at"]),
        note=derive_name(embedding, METADATA_SUFFIXES["note"]),
        index=derive_name(f"{source.table_name}_{embedding}", "_hnsw"),
        trigger=table_trigger_name(source.table_name),
        bulk_trigger=derive_name(source.table_name, "_bulk_notify_v10r"),
        channel=channel_name(source.table_name),
    )


def table_trigger_name(table: str) -> str:
    return derive_name(table, "_notify_v10r")


def channel_name(table: str) -> str:
    """The LISTEN/NOTIFY channel of a table: `v10r_<table>` (shortened if needed)."""
    return derive_name(f"v10r_{table}", "")


def notify_function() -> str:
    return f"{quote_ident(V10R_SCHEMA)}.{quote_ident(NOTIFY_FUNCTION)}"


def bookkeeping_table() -> str:
    return f"{quote_ident(V10R_SCHEMA)}.{quote_ident(BOOKKEEPING_TABLE)}"


# --- ownership markers -----------------------------------------------------------------
# Every column and index v10r creates carries `COMMENT ... IS 'v10r:<pipeline>:<role>'`.
# Only the table's owner can set a comment, so unlike the bookkeeping rows (which other
# roles may be able to write) the marker is proof that an object is v10r's.

MARKER_PREFIX = "v10r:"
ROLES = ("embedding", "model", "hash", "at", "note")
RETIRED = "retired"  # a vector column (and its metadata) replaced by a re-embedding
INDEX_ROLE = "index"


def marker(pipeline: str, role: str) -> str:
    return f"{MARKER_PREFIX}{pipeline}:{role}"


def parse_marker(comment: str | None) -> tuple[str, str] | None:
    """(pipeline, role) of a v10r marker comment, else None."""
    if not comment or not comment.startswith(MARKER_PREFIX):
        return None
    parts = comment[len(MARKER_PREFIX):].split(":")
    if len(parts) != 2 or not all(parts):
        return None
    return parts[0], parts[1]


def column_roles(names: PipelineNames) -> dict[str, str]:
    """Column name -> marker role, for the columns of one embedding column set."""
    return dict(zip((names.embedding, *names.metadata_columns), ROLES, strict=True))


def next_column(embedding: str) -> str:
    """The column a blue/green re-embedding fills beside `embedding`."""
    return derive_name(embedding, "_v10r_next")


def retired_column(embedding: str, generation: int) -> str:
    """Where the old vectors go at cutover: `<col>_v10r_old`, `<col>_v10r_old2`, …"""
    return derive_name(embedding, "_v10r_old" + (str(generation) if generation > 1 else ""))
