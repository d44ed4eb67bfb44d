"""`v10r demo`: run the whole job end to end on embedded defaults."""

from __future__ import annotations

from pathlib import Path

import click

from v10r.cli.common import console, run


@click.command()
@click.option("--query", default=None, help="What to search for at the end.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path(".v10r"),
              show_default=True, help="Where the embedded PostgreSQL keeps its data.")
@click.option("--reset", is_flag=True, help="Start over with a fresh database.")
@click.option("--workers", type=click.IntRange(1, 32), default=2, show_default=True,
              help="In-process workers.")
@click.option("--queue", type=click.Choice(["memory", "kafka"]), default="memory",
              show_default=True, help="`kafka` runs an embedded Kafka-protocol broker and a "
              "`faust -A v10r worker` process: the production path on one machine.")
def demo(query: str | None, data_dir: Path, reset: bool, workers: int, queue: str) -> None:
    """Embed a sample table end to end: no server, no Docker, no API key.

    \b
    Starts an embedded PostgreSQL with pgvector in --data-dir (reused next time),
    loads a few hundred articles, applies pipelines/docs.yaml's pipeline, embeds every
    row with the local model through the listener and in-process workers, shows new
    and updated rows get their vectors within moments, and ends with a semantic search.
    """
    from v10r.demo.run import DEFAULT_QUERY, DemoOptions, run_demo

    options = DemoOptions(data_dir=data_dir, query=query or DEFAULT_QUERY, reset=reset,
                          workers=workers, queue=queue)
    run(run_demo(options, console()))
