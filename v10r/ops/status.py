"""How far each pipeline is from its invariant: rows current, stale, missing.

"Stale" is a query, not a guess: a row is current when its stored hash equals the hash
of its current text under the pipeline's fingerprint (see `compile.content_hash`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import asyncpg

from v10r.compile.content_hash import fingerprint, stored_hash_sql
from v10r.compile.filter import filter_sql
from v10r.compile.names import PipelineNames
from v10r.spec.identifiers import quote_ident
from v10r.spec.model import Pipeline


@dataclass(frozen=True, slots=True)
class Counts:
    pipeline: str
    table: str
    rows: int  # rows matching the pipeline's filter
    current: int  # embedded from their current text (or deliberately empty)
    stale: int  # embedded from an older text, model or preprocessing
    missing: int  # never embedded
    empty: int  # current, but no vector: the text was empty
    last_embedded_at: datetime | None

    @property
    def pending(self) -> int:
        return self.stale + self.missing

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["pending"] = self.pending
        data["last_embedded_at"] = self.last_embedded_at.isoformat() if self.last_embedded_at else None
        return data


def counts_sql(pipeline: Pipeline, names: PipelineNames) -> str:
    """Every call and operator qualified: status runs this in v10r's own sessions."""
    hash_col = quote_ident(names.hash)
    current = (f"{hash_col} OPERATOR(pg_catalog.=) "
               f"{stored_hash_sql(names.columns, fingerprint(pipeline))}")
    count = "pg_catalog.count(*)"
    return (
        f"SELECT {count} AS rows,"
        f" {count} FILTER (WHERE {current}) AS current,"
        f" {count} FILTER (WHERE {hash_col} IS NULL) AS missing,"
        f" {count} FILTER (WHERE {current} AND {quote_ident(names.embedding)} IS NULL) AS empty,"
        f" pg_catalog.max({quote_ident(names.at)}) AS last_embedded_at"
        f" FROM {names.qualified_table} WHERE {filter_sql(pipeline.source.filter)}"
    )


async def pipeline_counts(conn: asyncpg.Connection, pipeline: Pipeline,
                          names: PipelineNames) -> Counts:
    row = await conn.fetchrow(counts_sql(pipeline, names))
    assert row is not None
    return Counts(
        pipeline=pipeline.name,
        table=names.display_table,
        rows=row["rows"],
        current=row["current"],
        stale=row["rows"] - row["current"] - row["missing"],
        missing=row["missing"],
        empty=row["empty"],
        last_embedded_at=row["last_embedded_at"],
    )
