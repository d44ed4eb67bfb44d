"""`v10r plan` and `v10r apply`: show, then make, the database changes the specs need."""

from __future__ import annotations

import sys

import click

from v10r.cli.common import console, run, spec_paths, specs_argument
from v10r.errors import V10rError
from v10r.redact import printable

# Exit codes shared with `v10r status`: 3 means "something is pending".
EXIT_PENDING = 3
EXIT_ERROR = 1


def _fail(exc: V10rError) -> None:
    click.echo(printable(f"error: {exc}"), err=True)
    sys.exit(exc.exit_code)


def _load(paths: tuple[str, ...]) -> tuple[list, object]:
    """The pipelines and their spec set (which files they came from: prune scope)."""
    from v10r.reconcile.specset import SpecSet
    from v10r.spec.load import load_paths

    roots = spec_paths(paths)
    loaded = load_paths(roots)
    pipelines = loaded.raise_for_errors()
    return pipelines, SpecSet.of(roots, {p.pipeline.name: p.file for p in loaded.pipelines})


index_after_rows_option = click.option(
    "--index-after-rows", type=click.IntRange(min=0), envvar="V10R_INDEX_AFTER_ROWS",
    default=10_000, show_default=True,
    help="On tables with at least this many rows, a new or re-embedded column's HNSW index "
    "is built by a later apply, once the column is filled (filling is ~10x faster without "
    "it). 0 builds it at once.")


@click.command()
@specs_argument
@click.option("--sql", "show_sql", is_flag=True, help="Show the SQL of every operation.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]),
              default="text", show_default=True,
              help="markdown: a table for a pull-request comment.")
@click.option("--prune", is_flag=True, help="Also plan removing pipelines no longer in the specs.")
@click.option("--drop-columns", is_flag=True,
              help="Also plan dropping old vector columns (kept after a re-embedding, or of "
              "pruned pipelines).")
@index_after_rows_option
def plan(paths: tuple[str, ...], show_sql: bool, fmt: str, prune: bool,
         drop_columns: bool, index_after_rows: int) -> None:
    """Show what `v10r apply` would change, and how many rows need embedding.

    Destructive operations are listed in the words `v10r apply` uses when it asks.

    \b
    Exit codes: 0 no changes, 3 changes pending, 1 error, 2 usage error.
    """
    from v10r.reconcile import plan_pipelines
    from v10r.reconcile.render import render_json, render_markdown, render_text

    try:
        pipelines, spec_set = _load(paths)
        result = run(plan_pipelines(pipelines, prune=prune, drop_columns=drop_columns,
                                    spec_set=spec_set, index_after_rows=index_after_rows))
    except V10rError as exc:
        _fail(exc)
        return
    if fmt == "json":
        click.echo(render_json(result))
    elif fmt == "markdown":
        click.echo(render_markdown(result), nl=False)
    else:
        console().print(render_text(result, sql=show_sql))
    sys.exit(EXIT_PENDING if result.has_changes else 0)


@click.command()
@specs_argument
@click.option("--prune", is_flag=True,
              help="Remove triggers, index and bookkeeping of pipelines no longer in the specs "
              "(only those applied from these spec files or directories).")
@click.option("--drop-columns", is_flag=True,
              help="Drop old vector columns kept after a re-embedding's cutover, and (with "
              "--prune) the vector and metadata columns of removed pipelines.")
@click.option("--yes", "-y", is_flag=True,
              help="Run destructive operations without asking (needed without a terminal).")
@click.option("--sql", "show_sql", is_flag=True, help="Show the SQL that ran.")
@index_after_rows_option
@click.option("--lock-timeout", type=click.FloatRange(min=0.001), default=5.0,
              envvar="V10R_LOCK_TIMEOUT", show_default=True,
              help="Seconds DDL waits for a table lock before stepping back (queries on the "
              "table queue behind a waiting ALTER, so keep it short).")
@click.option("--lock-retries", type=click.IntRange(min=0), default=5,
              envvar="V10R_LOCK_RETRIES", show_default=True,
              help="Further attempts after a lock timeout, with doubling pauses from 1s.")
def apply(paths: tuple[str, ...], prune: bool, drop_columns: bool, yes: bool,
          show_sql: bool, index_after_rows: int, lock_timeout: float,
          lock_retries: int) -> None:
    """Create or update columns, HNSW indexes, triggers and bookkeeping to match the specs.

    Safe to re-run: when nothing changed it does nothing. Before anything destructive
    (dropping or replacing a column, dropping an index or trigger, pruning a pipeline)
    it lists those operations and asks; without a terminal it refuses unless --yes.
    A finished blue/green re-embedding is cut over by the next apply.

    \b
    Exit codes: 0 applied (or nothing to do), 1 error or not confirmed (nothing
    changed), 2 usage error.
    """
    from v10r.reconcile import apply_pipelines, plan_pipelines
    from v10r.reconcile.locks import LockSettings
    from v10r.reconcile.render import render_text

    try:
        pipelines, spec_set = _load(paths)
        approve: bool | frozenset[str] = True
        if not yes:
            planned = run(plan_pipelines(pipelines, prune=prune, drop_columns=drop_columns,
                                         stats=False, spec_set=spec_set,
                                         index_after_rows=index_after_rows))
            approve = _confirm(planned.operations)
        result = run(apply_pipelines(pipelines, prune=prune, drop_columns=drop_columns,
                                     approve=approve, spec_set=spec_set,
                                     index_after_rows=index_after_rows,
                                     locks=LockSettings(lock_timeout, lock_retries)))
    except V10rError as exc:
        _fail(exc)
        return
    console().print(render_text(result.plan, sql=show_sql, applied=True))


def _confirm(operations: tuple) -> frozenset[str]:
    """List the destructive operations and ask; the answer approves exactly these."""
    from v10r.reconcile.ops import destructive
    from v10r.reconcile.render import destructive_listing

    listing = printable(destructive_listing(operations))
    if not listing:
        return frozenset()
    if not sys.stdin.isatty():
        click.echo(f"error: apply would run destructive operation(s):\n{listing}\n"
                   "  nothing changed; hint: review with `v10r plan`, then pass --yes to "
                   "confirm (no terminal to ask on)", err=True)
        sys.exit(EXIT_ERROR)
    click.echo(f"These operations destroy data or objects:\n{listing}")
    if not click.confirm("Run them?", default=False):
        click.echo("aborted; nothing changed", err=True)
        sys.exit(EXIT_ERROR)
    return frozenset(op.describe() for op in destructive(operations))

