"""Faust transport for the dev broker profile: aiokafka with a short fetch wait.

Tansu does not wake a waiting Fetch when new records arrive; it answers when
``fetch_max_wait_ms`` runs out. Faust hard-codes that wait to 1500 ms for its worker
consumer, which on Tansu turns a 2 ms hop into up to 1.5 s of latency at low rates
(measured: ingestion p50 ≈ 400 ms). This transport (URL scheme ``tansu://``, registered
as a ``faust.transports`` entry point) lowers the wait; everything else is Faust's
aiokafka driver unchanged. Redpanda and Kafka wake fetches properly and use ``kafka://``.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

#: Fetch wait on Tansu: short enough for the 100 ms ingestion target, long enough that an
#: idle consumer polls the broker only ~50 times a second.
FETCH_MAX_WAIT_MS = 20


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this attribute in start() to build its Fetcher; Faust offers no setting.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # noqa: SLF001
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    """aiokafka transport with ``FETCH_MAX_WAIT_MS`` for the worker consumer."""

    Consumer = _Consumer
