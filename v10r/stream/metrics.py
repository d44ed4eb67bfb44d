"""`/metrics`, `/healthz` and `/readyz` of the Faust worker, on `$V10R_METRICS_PORT`.

The same endpoint as `v10r worker --metrics-port`: counters (this worker's view of the
progress table), breakers, consumer-group lag, and the histograms the runtime observes.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from v10r.errors import SpecError
from v10r.ops.health import QueueWatch, ready_check
from v10r.ops.metrics import serving
from v10r.queues.factory import kafka_bootstrap
from v10r.queues.kafka import KafkaQueue
from v10r.spec.model import Pipeline
from v10r.stream.runtime import Resources
from v10r.work.settle import Counters, counter_samples

ENV_PORT = "V10R_METRICS_PORT"


def metrics_port(environ: dict[str, str] | None = None) -> int | None:
    raw = (os.environ if environ is None else environ).get(ENV_PORT, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 <= int(raw) <= 65_535:
        raise SpecError(f"{ENV_PORT}={raw!r} is not a port number",
                        hint=f"unset {ENV_PORT} or give it a number from 1 to 65535")
    return int(raw)


async def serve_metrics(port: int, kafka_url: str, pipelines: list[Pipeline],
                        resources: Resources, counts: Callable[[str], Counters]) -> None:
    """Serve until cancelled (the worker stops)."""
    watch = QueueWatch()
    watch.add(KafkaQueue(kafka_bootstrap(kafka_url)), [p.name for p in pipelines])

    def breakers() -> dict:
        runtime = resources._runtime
        return runtime.breakers.snapshot() if runtime is not None else {}

    def collect() -> list:
        runtime = resources._runtime
        return (counter_samples({p.name: counts(p.name) for p in pipelines})
                + (runtime.breakers.samples() if runtime is not None else [])
                + watch.samples())

    ready = ready_check({p.database.name: p.database for p in pipelines}, watch, breakers)
    stop = asyncio.Event()
    async with serving(port, collect, ready=ready):
        try:
            await watch.run(stop)
        finally:
            stop.set()
