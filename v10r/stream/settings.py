"""How the Faust worker is configured: environment variables, read once at import.

`faust -A v10r worker` takes no arguments of ours, so everything comes from the
environment; each setting has a default that works on one machine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from v10r.errors import SpecError
from v10r.queues.kafka import DEFAULT_MAX_BATCH_BYTES, max_batch_bytes


@dataclass(frozen=True)
class FaustSettings:
    app_id: str = "v10r"  # also the consumer group and the prefix of table topics
    pipelines_path: str = "pipelines/"
    kafka_url: str = "kafka://127.0.0.1:9092"
    store: str = "memory://"
    web_port: int | None = None  # None: the web server is off
    all_pipelines: bool = False  # also run pipelines whose queue.kind is not kafka
    session_timeout_s: float = 30.0
    heartbeat_interval_s: float = 3.0
    # Rows per batch; None: the pipeline's embedding.batch_size × max_concurrency.
    batch_size: int | None = None
    # How long a batch waits for company once its first event is in (`v10r.stream.take`):
    # a lone change waits this long; behind a backlog the window is 10 ms.
    batch_within_s: float = 0.002
    # How long the broker may hold a fetch that finds nothing new (Faust's own is 1.5 s,
    # which a lone change would wait out); see `v10r.stream.consumer`.
    fetch_wait_ms: int = 50
    concurrency: int = 2  # batches in flight per pipeline and worker process
    # Copies of other workers' table partitions each worker keeps warm (Faust's own
    # default is 1). The tables are a dedup cache and counters: a takeover that replays
    # them costs a little time once, while a standby reads every other worker's
    # changelogs all along.
    standby_replicas: int = 0
    clock_skew_s: float = 1.0  # margin between the producer's and the worker's clock
    retry_initial_s: float = 0.5
    retry_max_s: float = 10.0
    stop_grace_s: float = 20.0  # time a batch in hand gets to finish when the worker stops
    # Bytes per producer batch (table changelogs, dead letters): see
    # `v10r.queues.kafka.max_batch_bytes` ($V10R_KAFKA_MAX_BATCH_BYTES).
    producer_max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FaustSettings:
        env = os.environ if environ is None else environ

        def number(name: str, default: float) -> float:
            raw = env.get(name)
            try:
                return float(raw) if raw else default
            except ValueError:
                raise SpecError(f"{name}={raw!r} is not a number",
                                hint=f"unset {name} or give it a number") from None

        web = env.get("V10R_FAUST_WEB_PORT")
        batch = env.get("V10R_FAUST_BATCH_SIZE")
        return cls(
            app_id=env.get("V10R_FAUST_APP_ID") or cls.app_id,
            pipelines_path=env.get("V10R_PIPELINES") or cls.pipelines_path,
            kafka_url=env.get("V10R_KAFKA_URL") or cls.kafka_url,
            store=env.get("V10R_FAUST_STORE") or cls.store,
            web_port=int(number("V10R_FAUST_WEB_PORT", 0)) if web else None,
            all_pipelines=env.get("V10R_FAUST_ALL_PIPELINES", "") in ("1", "true", "yes"),
            session_timeout_s=number("V10R_FAUST_SESSION_TIMEOUT_S", cls.session_timeout_s),
            heartbeat_interval_s=number("V10R_FAUST_HEARTBEAT_S", cls.heartbeat_interval_s),
            batch_size=int(number("V10R_FAUST_BATCH_SIZE", 0)) if batch else None,
            batch_within_s=number("V10R_FAUST_BATCH_WITHIN_S", cls.batch_within_s),
            fetch_wait_ms=max(0, int(number("V10R_FAUST_FETCH_WAIT_MS", cls.fetch_wait_ms))),
            concurrency=max(1, int(number("V10R_FAUST_CONCURRENCY", cls.concurrency))),
            standby_replicas=max(0, int(number("V10R_FAUST_STANDBY_REPLICAS",
                                               cls.standby_replicas))),
            clock_skew_s=number("V10R_FAUST_CLOCK_SKEW_S", cls.clock_skew_s),
            retry_initial_s=number("V10R_FAUST_RETRY_INITIAL_S", cls.retry_initial_s),
            retry_max_s=number("V10R_FAUST_RETRY_MAX_S", cls.retry_max_s),
            stop_grace_s=number("V10R_FAUST_STOP_GRACE_S", cls.stop_grace_s),
            producer_max_batch_bytes=max_batch_bytes(env),
        )
