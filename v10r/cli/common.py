"""Options and helpers shared by the commands."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

import click
from rich.console import Console

T = TypeVar("T")

DEFAULT_SPEC_PATH = "pipelines"

specs_argument = click.argument(
    "paths", nargs=-1, type=click.Path(path_type=str),
)


def spec_paths(paths: tuple[str, ...]) -> list[str]:
    """Paths given on the command line, else `$V10R_PIPELINES`, else `pipelines/`."""
    if paths:
        return list(paths)
    return os.environ.get("V10R_PIPELINES", DEFAULT_SPEC_PATH).split(os.pathsep)


def console(stderr: bool = False, *, wrap: bool = False) -> Console:
    """Long lines are left to the terminal, unless `wrap` (wrapped at its width)."""
    return Console(stderr=stderr, highlight=False, soft_wrap=not wrap)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def stop_on_signals(stop: asyncio.Event, message: str) -> None:
    """SIGINT/SIGTERM set `stop` (saying `message` once): the command finishes cleanly."""
    def stopping() -> None:
        if not stop.is_set():
            click.echo(message, err=True)
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping)


# ---- logging options, accepted before and after the subcommand ----------------------

LOG_STATE = "v10r.logging"


def _logging_changed(ctx: click.Context, param: click.Parameter, value: object) -> None:
    from v10r.ops.logs import configure

    if not value:
        return
    state = ctx.find_root().meta.setdefault(LOG_STATE, {"verbose": 0, "format": None})
    if param.name == "verbose":
        state["verbose"] = max(state["verbose"], int(value))  # type: ignore[call-overload]
    else:
        state["format"] = value
    configure(state["verbose"], state["format"])


def logging_options() -> list[click.Option]:
    """`-v/-vv` and `--log-format`, for the group and for every command."""
    return [
        click.Option(["-v", "--verbose"], count=True, expose_value=False,
                     callback=_logging_changed,
                     help="More logging (-v info, -vv debug)."),
        click.Option(["--log-format"], type=click.Choice(["text", "json"]),
                     envvar="V10R_LOG_FORMAT", expose_value=False, callback=_logging_changed,
                     help="Log lines as text, or one JSON object per event "
                     "[env: V10R_LOG_FORMAT; default: text]."),
    ]


def with_logging_options(command: click.Command) -> click.Command:
    """Add the logging options to `command` (and a group's subcommands) once."""
    if not any(p.name == "verbose" for p in command.params):
        command.params.extend(logging_options())
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            with_logging_options(sub)
    return command
