"""The demo, step by step: database → sample rows → apply → listen + work → live changes
→ semantic search. Each step is a small function so the flow reads top to bottom."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import asyncpg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from v10r.compile.content_hash import fingerprint, source_hash, stored_hash
from v10r.compile.names import PipelineNames
from v10r.demo import backends
from v10r.demo.dataset import create_database, load_articles
from v10r.embedded.postgres import EmbeddedPostgres
from v10r.ops.status import pipeline_counts
from v10r.providers.base import Provider
from v10r.spec.load import load_pipelines
from v10r.spec.model import Pipeline

DEMO_DATABASE = "v10r_demo"
DEFAULT_QUERY = "I forgot my password and cannot log in"

LIVE_CHANGES = [
    ("insert", "Gift cards", ("<p>Gift cards never expire and can be spent on any order, "
                              "including sale items.</p>")),
    ("insert", "Dark mode", ("<p>Switch the app to dark mode under Profile, then "
                             "Appearance; it follows your system setting by default.</p>")),
    ("insert", "Keyboard shortcuts", ("<p>Press the question mark key anywhere to see every "
                                      "keyboard shortcut.</p>")),
    ("update", None, ("<p>Passwords can now be replaced by passkeys: sign in with your "
                      "fingerprint or face instead of typing a password.</p>")),
]


@dataclass(frozen=True)
class DemoOptions:
    data_dir: Path
    query: str
    reset: bool = False
    workers: int = 2
    queue: str = "memory"  # or "kafka": embedded broker + `faust -A v10r worker`


async def run_demo(options: DemoOptions, out: Console) -> None:
    if options.reset and options.data_dir.exists():
        shutil.rmtree(options.data_dir)
    server = EmbeddedPostgres(options.data_dir / "pgdata")
    started = time.perf_counter()
    await asyncio.to_thread(server.start)
    out.print(f"[bold]1.[/] PostgreSQL 18 + pgvector running at {server.dsn_for(DEMO_DATABASE)} "
              f"[dim](data in {options.data_dir}, started in {time.perf_counter() - started:.1f} s)[/]")
    try:
        await _run_with(server, options, out)
    finally:
        await asyncio.to_thread(server.stop)


async def _run_with(server: EmbeddedPostgres, options: DemoOptions, out: Console) -> None:
    from v10r.listen.applied import resolve_all
    from v10r.listen.listener import Listener
    from v10r.providers.local import LocalProvider
    from v10r.reconcile import apply_pipelines

    dsn = server.dsn_for(DEMO_DATABASE)
    await create_database(server.dsn, DEMO_DATABASE)
    rows = await load_articles(dsn)
    out.print(f"[bold]2.[/] table public.documents holds {rows} help-centre articles")

    os.environ["DATABASE_URL"] = dsn
    [pipeline] = load_pipelines([str(resources.files("v10r.demo").joinpath("docs.yaml"))])
    result = await apply_pipelines([pipeline])
    what = "columns, HNSW index and trigger created" if result.changed else "already applied"
    out.print(f"[bold]3.[/] v10r apply pipeline {pipeline.name!r}: {what}")

    [target] = await resolve_all([pipeline])
    provider = LocalProvider(max_batch_size=pipeline.embedding.batch_size)
    if options.queue == "kafka":
        transport = backends.kafka(pipeline, dsn, options.data_dir.resolve(), out)
    else:
        transport = backends.in_process(pipeline, target.names, provider, options.workers, out)
    try:
        async with transport as queue:
            stop_listener = asyncio.Event()
            listening = asyncio.create_task(Listener([target], queue).run(stop_listener))
            try:
                await _show(dsn, pipeline, target.names, provider, options.query, out)
            finally:
                stop_listener.set()
                await listening
    finally:
        await provider.aclose()
    _next_steps(out)


async def _show(dsn: str, pipeline: Pipeline, names: PipelineNames, provider: Provider,
                query: str, out: Console) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await _watch_backlog(conn, pipeline, names, out)
        await _live_changes(conn, pipeline, names, out)
        await _search(conn, provider, names, query, out)
    finally:
        await conn.close()


async def _watch_backlog(conn: asyncpg.Connection, pipeline: Pipeline, names: PipelineNames,
                         out: Console, timeout: float = 600.0) -> None:
    counts = await pipeline_counts(conn, pipeline, names)
    started, first_current = time.perf_counter(), counts.current
    columns = (TextColumn("[bold]5.[/] embedding"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn())
    with Progress(*columns, console=out, transient=False) as bar:
        task = bar.add_task("rows", total=counts.rows, completed=counts.current, rate="")
        deadline = time.monotonic() + timeout
        while counts.pending and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            counts = await pipeline_counts(conn, pipeline, names)
            rate = (counts.current - first_current) / max(time.perf_counter() - started, 1e-6)
            bar.update(task, completed=counts.current, total=counts.rows,
                       rate=f"{rate:,.0f} rows/s · {counts.pending} pending")
    if counts.pending:
        out.print(f"[yellow]{counts.pending} rows still pending after {timeout:.0f} s[/]")


async def _live_changes(conn: asyncpg.Connection, pipeline: Pipeline, names: PipelineNames,
                        out: Console) -> None:
    table = Table(title="6. live changes: COMMIT → vector visible", title_justify="left")
    for column in ("change", "row", "text", "vector after"):
        table.add_column(column, justify="right" if column == "vector after" else "left")
    fp = fingerprint(pipeline)
    for kind, title, body in LIVE_CHANGES:
        if kind == "insert":
            row_id = await conn.fetchval(
                "INSERT INTO public.documents (title, topic, body) VALUES ($1, 'New', $2) "
                "RETURNING id", title, body)
        else:
            row_id = await conn.fetchval(
                "UPDATE public.documents SET body = $1 WHERE id = (SELECT min(id) FROM "
                "public.documents WHERE topic = 'Passwords and sign-in') RETURNING id", body)
        expected = stored_hash(fp, source_hash([body]))
        seconds = await _wait_for_hash(conn, names, row_id, expected)
        shown = f"{seconds * 1000:,.0f} ms" if seconds is not None else "[red]not yet[/]"
        table.add_row(kind, str(row_id), (title or "(existing article)"), shown)
    out.print(table)


async def _wait_for_hash(conn: asyncpg.Connection, names: PipelineNames, row_id: int,
                         expected: str, timeout: float = 10.0) -> float | None:
    from v10r.spec.identifiers import quote_ident

    sql = (f"SELECT {quote_ident(names.hash)} = $2 AND {quote_ident(names.embedding)} IS NOT NULL "
           f"FROM {names.qualified_table} WHERE id = $1")
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if await conn.fetchval(sql, row_id, expected):
            return time.perf_counter() - started
        await asyncio.sleep(0.005)
    return None


async def _search(conn: asyncpg.Connection, provider: Provider, names: PipelineNames,
                  query: str, out: Console) -> None:
    from pgvector.asyncpg import register_vector

    from v10r.spec.identifiers import quote_ident

    await register_vector(conn)
    [vector] = await provider.embed([query])
    column = quote_ident(names.embedding)
    rows = await conn.fetch(
        f"SELECT id, title, {column} <=> $1 AS distance FROM {names.qualified_table} "
        f"WHERE {column} IS NOT NULL ORDER BY {column} <=> $1 LIMIT 5", vector)
    table = Table(title=f"7. semantic search: “{query}”", title_justify="left")
    table.add_column("id", justify="right")
    table.add_column("title")
    table.add_column("cosine distance", justify="right")
    for row in rows:
        table.add_row(str(row["id"]), row["title"], f"{row['distance']:.3f}")
    out.print(table)


def _next_steps(out: Console) -> None:
    out.print(
        "\n[bold]Point v10r at your own database:[/]\n"
        "  1. copy pipelines/docs.yaml and set source.table, key and columns\n"
        "  2. export DATABASE_URL=postgresql://user:password@host:5432/db\n"
        "  3. v10r validate pipelines/ && v10r plan pipelines/ && v10r apply pipelines/\n"
        "  4. v10r listen pipelines/ --workers-in-process 2\n"
        "Docs: docs/index.md · production setup: compose/")
