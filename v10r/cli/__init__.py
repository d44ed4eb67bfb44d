"""The `v10r` command line. One module per command; this one only wires them together.

Exit codes scripts can rely on: 0 success; 1 an error (bad spec, failed apply,
unreachable service); 2 a usage error; 3 something pending (`plan`: changes to apply,
`status`: rows to embed or pipelines to apply).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from v10r import __version__
from v10r.cli.common import LOG_STATE, logging_options, with_logging_options
from v10r.errors import V10rError
from v10r.ops.logs import configure
from v10r.redact import printable

# command name -> (module, attribute). Modules load only when their command runs, so
# `v10r --help` and `v10r validate` stay fast and need no optional dependency.
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("v10r.cli.validate", "validate"),
    "plan": ("v10r.cli.plan", "plan"),
    "apply": ("v10r.cli.plan", "apply"),
    "listen": ("v10r.cli.listen", "listen"),
    "backfill": ("v10r.cli.listen", "backfill"),
    "worker": ("v10r.cli.worker", "worker"),
    "dlq": ("v10r.cli.worker", "dlq"),
    "status": ("v10r.cli.status", "status"),
    "demo": ("v10r.cli.demo", "demo"),
    "schema": ("v10r.cli.validate", "schema"),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self._load(name) is not None]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        from v10r.db import set_application_name

        set_application_name(f"v10r {cmd_name}"[:63])  # as sessions show in pg_stat_activity
        return self._load(cmd_name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        try:
            module = importlib.import_module(target[0])
        except ModuleNotFoundError as exc:
            if exc.name == target[0]:  # the command is not part of this build yet
                return None
            raise
        command = getattr(module, target[1], None)
        return with_logging_options(command) if command is not None else None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"],
                                              "max_content_width": 100})
@click.version_option(__version__, prog_name="v10r")
def cli() -> None:
    """Keep pgvector embeddings of PostgreSQL text columns in sync, from YAML specs.

    \b
    Typical flow:
      v10r validate pipelines/          check the specs (CI-friendly)
      v10r plan pipelines/              show what apply would change
      v10r apply pipelines/             create columns, index and triggers
      v10r listen pipelines/            turn changes into tasks on a queue
      v10r worker pipelines/            embed and write vectors (redis/rabbitmq)
      faust -A v10r worker              the same on Kafka
    """
    ctx = click.get_current_context()
    if LOG_STATE not in ctx.meta:  # no logging option given: the defaults
        configure(0)


cli.params.extend(logging_options())


def main(argv: list[str] | None = None) -> Any:
    """Entry point: every `V10rError` becomes a clear message and exit code, never a traceback."""
    try:
        return cli.main(args=argv, prog_name="v10r", standalone_mode=True)
    except V10rError as exc:  # raised outside a command's own handling
        click.echo(printable(f"error: {exc}"), err=True)
        sys.exit(exc.exit_code)
