"""Real PostgreSQL+pgvector tables for the processing core, and an in-process provider
whose vectors are checkable (the same text always gives the same vector)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import numpy as np
import pytest

from v10r.compile.names import PipelineNames, pipeline_names
from v10r.db import connect_dsn, create_pool
from v10r.errors import ProviderError
from v10r.spec.identifiers import quote_ident
from v10r.spec.model import Database, Pipeline
from v10r.tasks import Task

DIMENSIONS = 8


def text_vector(text: str, dimensions: int = DIMENSIONS) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dimensions)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


@dataclass
class FakeProvider:
    """Counts calls and texts; `fail` decides per text whether to raise (and how)."""

    dimensions: int = DIMENSIONS
    model: str = "fake-model"
    name: str = "custom"
    max_batch_size: int = 2048
    max_input_chars: int = 32_000
    calls: int = 0
    texts: list[str] = field(default_factory=list)
    fail: Callable[[Sequence[str]], ProviderError | None] | None = None
    before_return: Callable[[Sequence[str]], Any] | None = None  # async hook

    async def embed(self, texts: Sequence[str], **_: Any) -> np.ndarray:
        self.calls += 1
        self.texts.extend(texts)
        error = self.fail(texts) if self.fail else None
        if error is not None:
            raise error
        if self.before_return is not None:
            await self.before_return(texts)
        return np.stack([text_vector(t, self.dimensions) for t in texts])

    async def aclose(self) -> None:
        return None


def make_pipeline(table: str = "public.docs", columns: Sequence[str] = ("body",),
                  key: Sequence[str] = ("id",), name: str = "docs", **sections: Any) -> Pipeline:
    source = {"table": table, "key": list(key), "columns": list(columns),
              **sections.pop("source", {})}
    embedding = {"provider": "custom", "base_url": "http://127.0.0.1:9", "model": "fake-model",
                 "dimensions": DIMENSIONS, **sections.pop("embedding", {})}
    return Pipeline(name=name, source=source, embedding=embedding, **sections)


async def create_table(conn: asyncpg.Connection, pipeline: Pipeline,
                       key_types: Sequence[str] = ("bigint",),
                       extra: str = "") -> PipelineNames:
    """The source table plus the target columns `v10r apply` would add."""
    names = pipeline_names(pipeline)
    q = quote_ident
    keys = ", ".join(f"{q(k)} {t}" for k, t in zip(names.key, key_types))
    texts = ", ".join(f"{q(c)} text" for c in names.columns)
    vector = f"{pipeline.target.type}({pipeline.dimensions})"
    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {q(names.schema)}")
    await conn.execute(
        f"CREATE TABLE {names.qualified_table} ({keys}, {texts}{extra}, "
        f"{q(names.embedding)} {vector}, {q(names.model)} text, {q(names.hash)} text, "
        f"{q(names.at)} timestamptz, {q(names.note)} text, "
        f"PRIMARY KEY ({', '.join(q(k) for k in names.key)}))")
    return names


def task_for(pipeline: Pipeline, key: Any) -> Task:
    names = pipeline_names(pipeline)
    return Task(pipeline=pipeline.name, database=pipeline.database.name,
                table=names.display_table, id=key, text_column=names.columns[0],
                embedding_column=names.embedding)


@pytest.fixture
async def db(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await connect_dsn(pg_dsn)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    created = await create_pool(Database(dsn=pg_dsn), max_size=4)
    try:
        yield created
    finally:
        await asyncio.wait_for(created.close(), 10)


class TcpProxy:
    """A real TCP hop in front of a service, to cut it off and bring it back."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones, as a crashed service would."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.transport.abort()
