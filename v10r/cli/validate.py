"""`v10r validate`: check specs against the schema and the semantic rules."""

from __future__ import annotations

import json
import sys

import click

from v10r.cli.common import spec_paths, specs_argument
from v10r.errors import SpecError
from v10r.redact import printable
from v10r.spec.diagnostics import as_errors, render_github, render_json, render_text
from v10r.spec.load import load_paths
from v10r.spec.model import json_schema


@click.command()
@specs_argument
@click.option("--format", "fmt", type=click.Choice(["text", "json", "github"]), default="text",
              show_default=True, help="`json` for CI tools, `github` for annotations.")
@click.option("--strict", is_flag=True, help="Treat warnings (e.g. unset ${VARS}) as errors: they "
              "are reported, counted and annotated as errors.")
def validate(paths: tuple[str, ...], fmt: str, strict: bool) -> None:
    """Check pipeline specs (files or directories of *.yaml) and report every problem.

    \b
    Errors print as `file:line:col: error: message (rule)`. Exit codes:
      0  all specs are valid (warnings allowed unless --strict)
      1  at least one error
      2  usage error (e.g. a path that does not exist)
    """
    try:
        result = load_paths(spec_paths(paths))
    except SpecError as exc:
        raise click.UsageError(printable(exc.message)) from None
    diagnostics = as_errors(result.diagnostics) if strict else result.diagnostics
    failing = any(d.level == "error" for d in diagnostics)
    flagged = {(d.file, d.pipeline) for d in diagnostics}
    valid = sum((p.file, p.pipeline.name) not in flagged for p in result.pipelines) if strict \
        else len(result.pipelines)
    if fmt == "json":
        click.echo(render_json(diagnostics, result.files, valid))
    elif fmt == "github":
        if diagnostics:
            click.echo(printable(render_github(diagnostics)))
    else:
        if diagnostics:
            click.echo(printable(render_text(diagnostics)), err=failing)
        errors = sum(d.level == "error" for d in diagnostics)
        summary = (f"{len(result.files)} file(s), {valid} valid pipeline(s), "
                   f"{errors} error(s), {len(diagnostics) - errors} warning(s)")
        click.echo(summary, err=failing)
    if not result.files:
        click.echo("error: no spec files (*.yaml, *.yml) found", err=True)
        sys.exit(1)
    sys.exit(1 if failing else 0)


@click.command()
def schema() -> None:
    """Print the JSON Schema of a pipeline spec (for editors and CI)."""
    click.echo(json.dumps(json_schema(), indent=2, ensure_ascii=False))
