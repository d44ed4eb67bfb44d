"""`run_workers`: the queue worker loops of `v10r worker` and of the listener's
in-process mode, over the one runtime (`v10r.work.runtime`).

It owns the pools and providers it creates, never the queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack

from v10r.compile.names import PipelineNames
from v10r.providers.base import Provider
from v10r.queues.base import Queue
from v10r.spec.model import Pipeline
from v10r.work.breaker import Breakers
from v10r.work.runtime import Runtime
from v10r.work.settle import Counters
from v10r.work.worker import DEFAULT_IN_FLIGHT, PipelineWorker

log = logging.getLogger("v10r.work")

DEFAULT_BATCH_SIZE = 256
CONSUME_TIMEOUT = 1.0  # also the longest a stop waits for an idle loop


async def run_workers(pipelines: Sequence[Pipeline], queue: Queue, concurrency: int,
                      stop: asyncio.Event, *, batch_size: int = DEFAULT_BATCH_SIZE,
                      providers: Mapping[str, Provider] | None = None,
                      names: Mapping[str, PipelineNames] | None = None,
                      stats: dict[str, Counters] | None = None,
                      breakers: Breakers | None = None,
                      in_flight: int | None = None) -> dict[str, Counters]:
    """Run `concurrency` consumer loops per pipeline until `stop` is set; return counters.

    `queue` must already be started, and is left open. `providers` and `names` (by
    pipeline name) override the spec's provider and the resolved column names. Pass
    `stats` (and `breakers`) to watch the counters (and pauses) while the loops run.
    Raises `ConnectionFailed`/`ProviderError`/`EnvError` at start when a database or
    provider cannot be set up; later outages are waited out.
    """
    stats = stats if stats is not None else {}
    slots = in_flight or DEFAULT_IN_FLIGHT
    async with AsyncExitStack() as stack:
        runtime = Runtime(stack, pool_size=concurrency * slots + 1, breakers=breakers)
        loops = []
        for pipeline in pipelines:
            counters = stats.setdefault(pipeline.name, Counters())
            pipe = await runtime.open(pipeline, provider=(providers or {}).get(pipeline.name),
                                      names=(names or {}).get(pipeline.name), counters=counters)
            loops += [PipelineWorker(pipe, queue, batch_size=batch_size, timeout=CONSUME_TIMEOUT,
                                     in_flight=slots).run(stop)
                      for _ in range(max(1, concurrency))]
        log.info("running %d worker loop(s) for %d pipeline(s)", len(loops), len(pipelines))
        await asyncio.gather(*loops)
    return stats
