"""Faust's Kafka transport with a fetch wait of our choosing, and commits that never
pass an offset still being processed.

faust-streaming builds its worker consumer with aiokafka's `fetch_max_wait_ms` fixed at
1500 ms. A broker that holds an empty fetch for that long makes a lone change wait up
to 1.5 s for the next fetch; v10r's own Kafka consumer waits 50 ms. The transport is
installed with `app.transport = FetchWaitTransport(...)` (Faust's public setter), so
the rest of Faust's consumer is untouched.
"""

from __future__ import annotations

import logging
from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as driver

DEFAULT_FETCH_WAIT_MS = 50
MAX_ACKED_AHEAD = 10_000  # offsets acked past one not acked before giving up on it

log = logging.getLogger(__name__)


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

    def _new_offset(self, tp: Any) -> int | None:
        """Faust's next commit for `tp`, but never past an offset not yet acked.

        faust-streaming 0.15 commits the first run of acked offsets when it starts one past
        the committed offset (its test is `min(acked) - committed > 1`, where `committed`
        is already the next offset to read). With two batches in flight the later one can
        finish first: its offsets were committed past the earlier batch's, whose tasks a
        crash then lost. Offsets the log does not hold (Faust's gaps) count as done."""
        committed = self._committed_offset[tp]
        acked = self._acked[tp]
        if (committed is not None and acked and min(acked) > committed
                and not self._gap[tp].overlaps(committed)):
            if len(acked) < MAX_ACKED_AHEAD:
                return None  # the task at `committed` is still in hand
            # Held back this long, it is not in hand but lost on the way in (a record
            # dropped around a rebalance is read again after it): move on, as Faust
            # would, rather than hold every later offset in memory; the listener's
            # catch-up scan finds the row if its vector is stale.
            log.warning("%s: offset %d was not processed in %d later messages; "
                        "committing past it", tp, committed, len(acked))
        return super()._new_offset(tp)


class FetchWaitTransport(driver.Transport):
    """The aiokafka transport whose worker consumer waits `fetch_wait_ms` per fetch."""

    Consumer = FetchWaitConsumer

    def __init__(self, *args: Any, fetch_wait_ms: int = DEFAULT_FETCH_WAIT_MS,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fetch_wait_ms = fetch_wait_ms
