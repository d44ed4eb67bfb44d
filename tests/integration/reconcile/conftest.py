"""Helpers for the reconciler's tests: pipelines built inline, notification capture."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from v10r.spec.model import Pipeline

SENTINEL = "v10r-test-sentinel"


def make_pipeline(dsn: str, **spec: Any) -> Pipeline:
    """A pipeline on `dsn`; `source` defaults to public.docs(id) → body."""
    spec.setdefault("name", "docs")
    spec.setdefault("source", {"table": "public.docs", "key": "id", "columns": ["body"]})
    spec.setdefault("database", {"dsn": dsn})
    return Pipeline.model_validate(spec)


class Notifications:
    """Collects NOTIFY payloads on one channel; `drain` waits for a sentinel instead of
    sleeping, so "no notification" is asserted without guessing a delay."""

    def __init__(self, conn: asyncpg.Connection, channel: str) -> None:
        self.conn, self.channel = conn, channel
        self.queue: asyncio.Queue[str] = asyncio.Queue()

    def _on(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self.queue.put_nowait(payload)

    async def start(self) -> Notifications:
        await self.conn.add_listener(self.channel, self._on)
        return self

    async def drain(self, writer: asyncpg.Connection) -> list[dict[str, Any]]:
        """Every payload sent before now (the writer's transactions must be committed)."""
        await writer.execute("SELECT pg_notify($1, $2)", self.channel, SENTINEL)
        received = []
        while True:
            payload = await asyncio.wait_for(self.queue.get(), timeout=10)
            if payload == SENTINEL:
                return received
            received.append(json.loads(payload))


@pytest.fixture
async def conn(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(pg_dsn)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def listener_conn(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(pg_dsn)
    try:
        yield connection
    finally:
        await connection.close()
