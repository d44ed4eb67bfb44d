"""Faust's Kafka transport with a fetch wait of our choosing.

faust-streaming builds its worker consumer with aiokafka's `fetch_max_wait_ms` fixed at
1500 ms. A broker that holds an empty fetch for that long makes a lone change wait up
to 1.5 s for the next fetch; v10r's own Kafka consumer waits 50 ms. The transport is
installed with `app.transport = FetchWaitTransport(...)` (Faust's public setter), so
the rest of Faust's consumer is untouched.
"""

from __future__ import annotations

from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as driver

DEFAULT_FETCH_WAIT_MS = 50


class FetchWaitConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Read by aiokafka when the consumer starts and builds its fetcher.
        consumer._fetch_max_wait_ms = getattr(transport, "fetch_wait_ms",
                                              DEFAULT_FETCH_WAIT_MS)
        return consumer


class FetchWaitConsumer(driver.Consumer):
    def _new_consumer_thread(self) -> FetchWaitConsumerThread:
        return FetchWaitConsumerThread(self, loop=self.loop, beacon=self.beacon)


class FetchWaitTransport(driver.Transport):
    """The aiokafka transport whose worker consumer waits `fetch_wait_ms` per fetch."""

    Consumer = FetchWaitConsumer

    def __init__(self, *args: Any, fetch_wait_ms: int = DEFAULT_FETCH_WAIT_MS,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fetch_wait_ms = fetch_wait_ms
