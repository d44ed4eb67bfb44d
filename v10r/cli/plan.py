"""`v10r plan` and `v10r apply`: show, then make, the database changes the specs need."""

from __future__ import annotations

import sys

import click

from v10r.cli.common import console, run, spec_paths, specs_argument
from v10r.errors import V10rError
from v10r.redact import printable
from v10r.spec.load import load_pipelines


def _fail(exc: V10rError) -> None:
    click.echo(printable(f"error: {exc}"), err=True)
    sys.exit(exc.exit_code)


@click.command()
@specs_argument
@click.option("--sql", "show_sql", is_flag=True, help="Show the SQL of every operation.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--prune", is_flag=True, help="Also plan removing pipelines no longer in the specs.")
@click.option("--drop-columns", is_flag=True, help="With --prune: also their columns.")
def plan(paths: tuple[str, ...], show_sql: bool, fmt: str, prune: bool,
         drop_columns: bool) -> None:
    """Show what `v10r apply` would change, and how many rows need embedding.

    \b
    Exit codes: 0 no changes, 2 changes pending, 1 error.
    """
    from v10r.reconcile import plan_pipelines
    from v10r.reconcile.render import render_json, render_text

    try:
        pipelines = load_pipelines(spec_paths(paths))
        result = run(plan_pipelines(pipelines, prune=prune, drop_columns=drop_columns))
    except V10rError as exc:
        _fail(exc)
        return
    if fmt == "json":
        click.echo(render_json(result))
    else:
        console().print(render_text(result, sql=show_sql))
    sys.exit(2 if result.has_changes else 0)


@click.command()
@specs_argument
@click.option("--prune", is_flag=True,
              help="Remove triggers, index and bookkeeping of pipelines no longer in the specs.")
@click.option("--drop-columns", is_flag=True,
              help="With --prune: also drop those pipelines' vector and metadata columns.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before dropping columns.")
@click.option("--sql", "show_sql", is_flag=True, help="Show the SQL that ran.")
def apply(paths: tuple[str, ...], prune: bool, drop_columns: bool, yes: bool,
          show_sql: bool) -> None:
    """Create or update columns, HNSW indexes, triggers and bookkeeping to match the specs.

    Safe to re-run: when nothing changed it does nothing. Exit codes: 0 ok, 1 error.
    """
    from v10r.reconcile import apply_pipelines
    from v10r.reconcile.render import render_text

    if drop_columns and not prune:
        raise click.UsageError("--drop-columns only applies with --prune")
    try:
        pipelines = load_pipelines(spec_paths(paths))
        if drop_columns:
            _confirm_drop(pipelines, yes)
        result = run(apply_pipelines(pipelines, prune=prune, drop_columns=drop_columns))
    except V10rError as exc:
        _fail(exc)
        return
    console().print(render_text(result.plan, sql=show_sql, applied=True))


def _confirm_drop(pipelines: list, yes: bool) -> None:
    """Dropping columns deletes vectors: list them and ask, unless --yes."""
    from v10r.reconcile import plan_pipelines
    from v10r.reconcile.ops import DropColumn

    planned = run(plan_pipelines(pipelines, prune=True, drop_columns=True, stats=False))
    drops = [op for op in planned.operations if isinstance(op, DropColumn)]
    if not drops or yes:
        return
    listing = printable("\n".join(f"  - {op.describe()}" for op in drops))
    if not sys.stdin.isatty():
        click.echo(f"error: --drop-columns would drop:\n{listing}\n  hint: add --yes to "
                   "confirm", err=True)
        sys.exit(1)
    click.echo(f"This drops:\n{listing}")
    if not click.confirm("Drop these columns?", default=False):
        click.echo("aborted; nothing changed", err=True)
        sys.exit(1)
