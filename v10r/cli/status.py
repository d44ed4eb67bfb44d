"""`v10r status`: per pipeline, is it applied, and how many rows are current, stale, missing."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from typing import Any

import asyncpg
import click
from rich.table import Table

from v10r import db
from v10r.cli.common import console, run, spec_paths, specs_argument
from v10r.ops.status import Counts, pipeline_counts
from v10r.reconcile.state import AppliedPipeline, applied_state
from v10r.redact import safe
from v10r.spec.identifiers import quote_ident
from v10r.spec.load import load_pipelines
from v10r.spec.model import Pipeline


@click.command()
@specs_argument
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
def status(paths: tuple[str, ...], fmt: str) -> None:
    """Show, per pipeline, whether it is applied and how many rows are embedded.

    \b
    A row is current when its stored hash matches its current text, model and
    preprocessing; stale when any of those changed; missing when never embedded.
    During a blue/green re-embedding the counts are those of the new column being
    filled (queries still read the old one); `v10r apply` swaps them once it is done.
    Exit codes: 0 every pipeline applied and nothing pending, 1 error,
    3 something pending or not applied (useful in scripts and health checks).
    """
    pipelines = load_pipelines(spec_paths(paths))
    report = run(_collect(pipelines))
    if fmt == "json":
        click.echo(json.dumps(report, indent=2))
    else:
        _render(report)
    in_sync = all(r["applied"] and r["up_to_date"] and r["counts"] and r["counts"]["pending"] == 0
                  and not r["reembedding"]
                  for r in report)
    sys.exit(0 if in_sync else 3)


async def _collect(pipelines: list[Pipeline]) -> list[dict[str, Any]]:
    by_database: dict[Any, list[Pipeline]] = defaultdict(list)
    for p in pipelines:
        by_database[p.database].append(p)
    report = []
    for database, group in by_database.items():
        conn = await db.connect(database, "read", pipeline=group[0].name)
        try:
            states = await applied_state(conn, group)
            for p in group:
                report.append(await _one(conn, p, states[p.name]))
        finally:
            await conn.close()
    return report


async def _one(conn: Any, p: Pipeline, state: AppliedPipeline) -> dict[str, Any]:
    counts: Counts | None = None
    if state.applied:
        try:
            counts = await pipeline_counts(conn, p, state.names)
        except asyncpg.UndefinedColumnError:
            counts = None  # a drifted pipeline: its problems say which column is missing
    serving = state.serving or state.names
    migration = None
    if state.serving is not None and counts is not None:
        migration = {"column": state.names.embedding, "done": counts.current,
                     "total": counts.rows, "complete": counts.pending == 0,
                     "eta_s": await _eta(conn, state, counts)}
    return {
        "pipeline": p.name,
        "table": serving.display_table,
        "column": serving.embedding,
        "model": p.model,
        "queue": p.queue.kind,
        "applied": state.applied,
        "up_to_date": state.up_to_date,
        "problems": list(state.problems),
        "warnings": list(state.warnings),
        "counts": counts.as_json() if counts else None,
        "reembedding": migration,
    }


async def _eta(conn: Any, state: AppliedPipeline, counts: Counts) -> float | None:
    """Seconds left at the rate the new column has been filled so far (None: no rate yet)."""
    at = quote_ident(state.names.at)
    span = await conn.fetchval(f"SELECT extract(epoch FROM pg_catalog.max({at}) "
                               f"OPERATOR(pg_catalog.-) pg_catalog.min({at})) "
                               f"FROM {state.names.qualified_table}")
    if not span or counts.current == 0 or counts.pending == 0:
        return None
    return round(float(span) / counts.current * counts.pending, 1)


def _render(report: list[dict[str, Any]]) -> None:
    table = Table(title="v10r status", title_justify="left")
    for column in ("pipeline", "table.column", "model", "state", "rows", "current", "stale",
                   "missing", "empty", "last embedded"):
        numeric = column in ("rows", "current", "stale", "missing", "empty")
        table.add_column(column, justify="right" if numeric else "left",
                         no_wrap=column != "table.column", overflow="fold")
    for r in report:
        c = r["counts"] or {}
        m = r["reembedding"]
        state = "[green]in sync[/]" if r["up_to_date"] and c.get("pending") == 0 else (
            "[yellow]embedding[/]" if r["up_to_date"] else
            "[red]not applied[/]" if not r["applied"] else "[red]drifted[/]")
        if m:
            state = ("[yellow]ready to cut over[/]" if m["complete"]
                     else "[yellow]re-embedding[/]")
        last = (c.get("last_embedded_at") or "—")[:19].replace("T", " ")
        table.add_row(safe(r["pipeline"]), safe(f"{r['table']}.{r['column']}"), safe(r["model"]),
                      state,
                      *(str(c.get(k, "—")) for k in ("rows", "current", "stale", "missing", "empty")),
                      last)
    out = console()
    out.print(table)
    for r in report:
        name = safe(r["pipeline"])
        if m := r["reembedding"]:
            eta = f", ~{m['eta_s']:,.0f}s left" if m["eta_s"] is not None else ""
            out.print(f"[yellow]{name}[/]: re-embedding into {safe(m['column'])}: "
                      f"{m['done']:,}/{m['total']:,} rows done{eta}; queries read "
                      f"{safe(r['column'])} until `v10r apply` cuts over")
        for problem in r["problems"]:
            out.print(f"[red]{name}[/]: {safe(problem)}")
        for warning in r["warnings"]:
            out.print(f"[yellow]{name}[/]: {safe(warning)}")
