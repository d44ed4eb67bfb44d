"""Content hashes, computed identically in Python and in SQL.

The guarded write runs in SQL, which cannot re-run Python preprocessing, so the hash is
taken over the *raw* source values, encoded the same way on both sides:

    source_hash = sha256( for each column: "<char length>:<value>" or "-" for NULL )

The stored hash folds in the pipeline's fingerprint (model, dimensions, preprocessing,
template), so changing any of those makes every row stale without touching its text:

    stored_hash = sha256( fingerprint + ":" + source_hash )        (hex strings)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from v10r.spec.identifiers import quote_ident, quote_literal
from v10r.spec.model import Pipeline

FINGERPRINT_VERSION = 1
CONCAT = "OPERATOR(pg_catalog.||)"


def fingerprint(pipeline: Pipeline) -> str:
    """What, besides the text, decides the vector: change it and rows are re-embedded."""
    emb = pipeline.embedding
    payload = {
        "v": FINGERPRINT_VERSION,
        "provider": emb.provider,
        "model": emb.model,
        "dimensions": emb.dimensions,
        "send_dimensions": emb.send_dimensions,
        "max_input_chars": emb.max_input_chars,
        "columns": list(pipeline.source.columns),
        "template": pipeline.source.template,
        "preprocess": pipeline.preprocess.model_dump(mode="json"),
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _encode(values: Sequence[str | None]) -> bytes:
    return "".join("-" if v is None else f"{len(v)}:{v}" for v in values).encode("utf-8")


def source_hash(values: Sequence[str | None]) -> str:
    """Hash of the raw source column values, in spec column order."""
    return hashlib.sha256(_encode(values)).hexdigest()


def stored_hash(fingerprint_hex: str, source_hash_hex: str) -> str:
    return hashlib.sha256(f"{fingerprint_hex}:{source_hash_hex}".encode()).hexdigest()


def source_hash_sql(columns: Sequence[str], alias: str | None = None) -> str:
    """SQL expression equal to `source_hash` of the row's columns (PostgreSQL 11+).

    Every call and operator is schema-qualified: the guarded write and the scans run in
    sessions whose search path v10r does not control."""
    prefix = f"{quote_ident(alias)}." if alias else ""
    parts = []
    for column in columns:
        ref = f"{prefix}{quote_ident(column)}::pg_catalog.text"
        parts.append(f"coalesce(pg_catalog.length({ref})::pg_catalog.text {CONCAT} "
                     f"':'::pg_catalog.text {CONCAT} {ref}, '-'::pg_catalog.text)")
    concatenated = f" {CONCAT} ".join(parts) if parts else "''::pg_catalog.text"
    return _sha256_hex(concatenated)


def stored_hash_sql(columns: Sequence[str], fingerprint_hex: str, alias: str | None = None) -> str:
    """SQL expression equal to `stored_hash(fingerprint, source_hash(row))`."""
    inner = source_hash_sql(columns, alias)
    return _sha256_hex(f"{quote_literal(fingerprint_hex + ':')}::pg_catalog.text {CONCAT} {inner}")


def _sha256_hex(text_sql: str) -> str:
    return ("pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to("
            f"{text_sql}, 'UTF8')), 'hex')")
