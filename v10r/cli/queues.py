"""What `listen`, `backfill`, `worker` and `dlq` share: which specs, which queue.

`--queue` overrides each pipeline's `queue.kind` (with that kind's default URL);
pipelines whose queue settings agree share one broker connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack

import click

from v10r.cli.common import spec_paths
from v10r.errors import SpecError
from v10r.queues.base import Queue
from v10r.redact import printable
from v10r.spec.load import load_paths
from v10r.spec.model import Pipeline
from v10r.spec.model import Queue as QueueSpec

QUEUE_KINDS = ["memory", "redis", "rabbitmq", "kafka"]


def queue_option(help: str) -> click.Option:
    return click.option("--queue", "queue_kind", type=click.Choice(QUEUE_KINDS), default=None,
                        help=help)


metrics_option = click.option(
    "--metrics-port", type=click.IntRange(0, 65535), default=None, metavar="PORT",
    envvar="V10R_METRICS_PORT",
    help="Serve Prometheus metrics at http://0.0.0.0:PORT/metrics, with /healthz (alive) "
    "and /readyz (database, queue and provider reachable) [env: V10R_METRICS_PORT].")


def load_specs(paths: tuple[str, ...]) -> list[Pipeline]:
    """The pipelines, or a usage error (bad path) / `SpecError` (invalid specs)."""
    try:
        result = load_paths(spec_paths(paths))
    except SpecError as exc:
        raise click.UsageError(printable(exc.message)) from None
    return result.raise_for_errors()


def select(pipelines: list[Pipeline], only: str | None) -> list[Pipeline]:
    if only is None:
        return pipelines
    chosen = [p for p in pipelines if p.name == only]
    if not chosen:
        known = ", ".join(sorted(p.name for p in pipelines)) or "none"
        raise click.UsageError(f"no pipeline named {only!r} in the specs (found: {known})")
    return chosen


def kind_of(pipeline: Pipeline, override: str | None) -> str:
    return override or pipeline.queue.kind


def queue_spec(pipeline: Pipeline, override: str | None) -> QueueSpec:
    spec = pipeline.queue
    if override and override != spec.kind:
        spec = spec.model_copy(update={"kind": override, "url": None})
    return spec


def by_queue(pipelines: Sequence[Pipeline], override: str | None) -> list[list[Pipeline]]:
    """Pipelines sharing one broker connection: same kind, URL and settings."""
    groups: dict[str, list[Pipeline]] = {}
    for pipeline in pipelines:
        key = queue_spec(pipeline, override).model_dump_json(exclude={"dedup_window_ms"})
        groups.setdefault(key, []).append(pipeline)
    return list(groups.values())


async def open_queue(stack: AsyncExitStack, group: Sequence[Pipeline],
                     override: str | None) -> Queue:
    """A started queue for the group, closed when `stack` closes."""
    from v10r.queues.factory import create_queue

    queue = create_queue(queue_spec(group[0], override), pipelines=[p.name for p in group])
    await queue.start()
    stack.push_async_callback(queue.close)
    return queue
