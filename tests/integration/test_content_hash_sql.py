"""The content hash computed in SQL equals the one computed in Python, byte for byte,
for every kind of text (the guarded write depends on it)."""

from __future__ import annotations

import asyncpg
import pytest

from v10r.compile.content_hash import source_hash, source_hash_sql, stored_hash, stored_hash_sql

pytestmark = pytest.mark.integration

VALUES: list[tuple[str | None, str | None]] = [
    ("", ""), (None, None), ("a", None), (None, "a"), ("-", "0:"), ("1:a", ""),
    ("héllo wörld", "日本語のテキスト"), ("emoji 🎉👍🏽", "tab\tnew\nline"),
    ("quote ' and \" and \\", "x" * 10_000), ("\u200b zero width", "ß" * 3),
]


async def test_sql_and_python_hashes_agree(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("CREATE TABLE h (id int PRIMARY KEY, a text, b varchar)")
        await conn.executemany("INSERT INTO h VALUES ($1, $2, $3)",
                               [(i, a, b) for i, (a, b) in enumerate(VALUES)])
        fp = "0123456789abcdef"
        rows = await conn.fetch(
            f"SELECT id, {source_hash_sql(['a', 'b'], 'h')} AS source, "
            f"{stored_hash_sql(['a', 'b'], fp, 'h')} AS stored FROM h ORDER BY id")
    finally:
        await conn.close()
    for row, (a, b) in zip(rows, VALUES, strict=True):
        assert row["source"] == source_hash([a, b])
        assert row["stored"] == stored_hash(fp, source_hash([a, b]))
