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


def console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


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
