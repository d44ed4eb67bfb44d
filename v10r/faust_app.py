"""The Faust app behind `faust -A v10r worker -l info`: one agent per Kafka pipeline.

Built once at import from the specs in `$V10R_PIPELINES` (default `pipelines/`); only
declarations happen here (topics, tables, agents), nothing connects until the worker
starts. See `v10r.stream.settings` for the environment variables.

Per pipeline: agent on `v10r.tasks.<pipeline>` → dedup (table `seen-<pipeline>`) →
`take_batches` batch (`concurrency` of them in flight) → processing core → retries → `v10r.dlq.<pipeline>`;
counters in table `progress`. Faust acks a batch's events when the loop body returns,
that is after the write (or the dead-letter send) of every task in it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

import faust

from v10r.ops.logs import faust_logging_config
from v10r.queues.factory import kafka_bootstrap
from v10r.queues.kafka import dlq_topic, task_topic
from v10r.spec.load import load_pipelines
from v10r.spec.model import Pipeline
from v10r.stream.consumer import FetchWaitTransport
from v10r.stream.metrics import metrics_port, serve_metrics
from v10r.stream.progress import PROGRESS_TABLE, progress_key, total
from v10r.stream.runtime import Resources, TableLedger, TopicOutbox, incoming
from v10r.stream.settings import FaustSettings
from v10r.stream.take import take_batches
from v10r.work.settle import Counters

log = logging.getLogger(__name__)

settings = FaustSettings.from_env()
RUN_ID = uuid.uuid4().hex[:12]  # this worker run's progress key


def kafka_pipelines(found: list[Pipeline], every: bool) -> list[Pipeline]:
    return [p for p in found if every or p.queue.kind == "kafka"]


pipelines = kafka_pipelines(load_pipelines([Path(settings.pipelines_path)]),
                            settings.all_pipelines)
partitions = max((p.queue.partitions for p in pipelines), default=4)

app = faust.App(
    settings.app_id,
    broker=[f"kafka://{h}" for h in kafka_bootstrap(settings.kafka_url).split(",")],
    store=settings.store,
    topic_partitions=partitions,
    broker_session_timeout=settings.session_timeout_s,
    broker_heartbeat_interval=settings.heartbeat_interval_s,
    web_enabled=settings.web_port is not None,
    web_port=settings.web_port or 6066,
    consumer_auto_offset_reset="earliest",
    producer_max_batch_size=settings.producer_max_batch_bytes,
    table_standby_replicas=settings.standby_replicas,
    logging_config=faust_logging_config(),  # masked, text or JSON ($V10R_LOG_FORMAT)
)
# Before any topic is declared: declaring one builds the transport.
app.transport = FetchWaitTransport(app.conf.broker_consumer, app,
                                   fetch_wait_ms=settings.fetch_wait_ms)

progress_table = app.Table(PROGRESS_TABLE, default=dict, partitions=partitions,
                           use_partitioner=True,
                           help="counters per pipeline and run")
resources = Resources(settings)


def progress_counts(pipeline: str) -> Counters:
    """This worker's view of a pipeline's totals (the partitions it holds, all runs)."""
    return total(progress_table.items(), pipeline)


def _declare(pipeline: Pipeline) -> None:
    name, count = pipeline.name, pipeline.queue.partitions
    tasks = app.topic(task_topic(name), key_serializer="raw", value_serializer="raw",
                      partitions=count)
    outbox = TopicOutbox(tasks, app.topic(dlq_topic(name), key_serializer="raw",
                                          value_serializer="raw", partitions=count))
    seen = app.Table(f"seen-{name}", partitions=count, use_partitioner=True,
                     help="the rows each recent batch fetched, and when")
    ledger = TableLedger(seen)
    # Rows for every provider request the pipeline may have in flight at once.
    embedding = pipeline.embedding
    batch_size = settings.batch_size or embedding.batch_size * embedding.max_concurrency

    async def process(stream: Any) -> None:
        async for messages in take_batches(stream, batch_size, settings.batch_within_s,
                                           incoming):
            await _settle(pipeline, messages, ledger, outbox)

    app.agent(tasks, name=f"v10r.agent.{name}", concurrency=settings.concurrency)(process)


async def _settle(pipeline: Pipeline, messages: list[Any], ledger: TableLedger,
                  outbox: TopicOutbox) -> None:
    """Handle a batch; when the worker stops meanwhile, finish it or hand it back."""
    async def handle() -> Counters:
        handler = await resources.handler(pipeline, ledger, outbox)
        await handler.handle(messages)
        return handler.progress

    job = asyncio.ensure_future(handle())
    try:
        counts = await asyncio.shield(job)
    except asyncio.CancelledError:
        done, _ = await asyncio.wait([job], timeout=settings.stop_grace_s)
        if not done:  # the batch's events are acked on the way out: publish them again
            job.cancel()
            tasks = [m.task for m in messages if m.task is not None]
            await asyncio.wait_for(outbox.republish(tasks), settings.stop_grace_s)
            log.warning("pipeline %s: stopped mid-batch; re-published %d task(s)",
                        pipeline.name, len(tasks))
        raise
    try:
        progress_table[progress_key(pipeline.name, RUN_ID)] = counts.as_dict()
    except Exception:  # counters must not stop the agent; the work itself is done
        log.exception("pipeline %s: cannot update the progress table", pipeline.name)


for _pipeline in pipelines:
    _declare(_pipeline)


if (_metrics_port := metrics_port()) is not None:
    @app.task
    async def _metrics() -> None:
        await serve_metrics(_metrics_port, settings.kafka_url, pipelines, resources,
                            progress_counts)


@app.on_before_shutdown.connect
async def _close_resources(sender: Any, **kwargs: Any) -> None:
    await resources.aclose()
