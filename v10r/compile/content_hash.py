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
    """SQL expression equal to `source_hash` of the row's columns (PostgreSQL 11+)."""
    prefix = f"{quote_ident(alias)}." if alias else ""
    parts = []
    for column in columns:
        ref = f"{prefix}{quote_ident(column)}::text"
        parts.append(f"coalesce(length({ref})::text || ':' || {ref}, '-')")
    concatenated = " || ".join(parts) if parts else "''"
    return f"encode(sha256(convert_to({concatenated}, 'UTF8')), 'hex')"


def stored_hash_sql(columns: Sequence[str], fingerprint_hex: str, alias: str | None = None) -> str:
    """SQL expression equal to `stored_hash(fingerprint, source_hash(row))`."""
    inner = source_hash_sql(columns, alias)
    return (f"encode(sha256(convert_to({quote_literal(fingerprint_hex + ':')} || {inner}, "
            "'UTF8')), 'hex')")
