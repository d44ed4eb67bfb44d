"""The demo's sample table: a few hundred help-centre articles that ship with v10r."""

from __future__ import annotations

import json
from importlib import resources

import asyncpg

TABLE_SQL = """
CREATE TABLE IF NOT EXISTS public.documents (
    id    bigserial PRIMARY KEY,
    title text NOT NULL,
    topic text NOT NULL,
    body  text
)"""


def articles() -> list[dict[str, str]]:
    text = resources.files("v10r.demo").joinpath("articles.jsonl").read_text("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def create_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def load_articles(dsn: str) -> int:
    """Create the table and load the articles once; returns the number of rows."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        await conn.execute(TABLE_SQL)
        count = await conn.fetchval("SELECT count(*) FROM public.documents")
        if count == 0:
            rows = [(a["title"], a["topic"], a["body"]) for a in articles()]
            await conn.executemany(
                "INSERT INTO public.documents (title, topic, body) VALUES ($1, $2, $3)", rows)
            count = len(rows)
        return int(count)
    finally:
        await conn.close()
