"""Request pacing towards TWS, shared by every process through the Redis token bucket.

TWS drops client messages above 50 per second (error 100, repeated offences end the
session), counted on its side of the socket. ``ib_insync`` queues its own sends above
45 per rolling second, but two windows measured at the two ends of a socket do not
line up: a burst queued just before a second boundary and the next just after it
arrive inside one TWS second. So every subscription, qualification and order request
first takes a token from the ``ibkr`` namespace of the shared limiter
(:mod:`quanticity.data_ingestion.rate_limiter`): ``marketdata`` at
``pacing.market_data_per_s`` with a short burst, ``orders`` at ``pacing.orders_per_s``,
both under one global ceiling, so ingestion and execution on one TWS share a budget.

When Redis does not answer, the pacer falls back to pacing this process alone at the
same rate (logged and counted), rather than stopping subscriptions or orders.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog
from redis.asyncio import Redis

from quanticity.data_ingestion.rate_limiter import Bucket, RateLimiter, RateLimits
from quanticity.errors import RedisUnavailableError
from quanticity.ibkr.metrics import IbkrMetrics
from quanticity.ibkr.settings import Pacing

log = structlog.get_logger(__name__)

MARKET_DATA = "marketdata"
ORDERS = "orders"

Pace = Callable[[int], Awaitable[None]]


async def no_pacing(n: int) -> None:
    """A pace that never waits (a connection used without a shared limiter)."""


def ibkr_limits(pacing: Pacing) -> RateLimits:
    """The buckets of the ``ibkr`` namespace; every process builds the same ones from config."""
    md = pacing.market_data_per_s
    md_burst = max(1.0, md / 5.0)  # at most a fifth of a second's budget at once
    return RateLimits(
        global_bucket=Bucket(md, md_burst),
        function_default=Bucket(md, md_burst),
        function_overrides={
            MARKET_DATA: Bucket(md, md_burst),
            ORDERS: Bucket(pacing.orders_per_s, pacing.orders_per_s),
        },
    )


class Pacer:
    """Waits for ``n`` tokens of one bucket before requests are sent to TWS.

    Args:
        redis: the shared Redis (asyncio client).
        metrics: IBKR metrics (limiter waits are observed per bucket; fallbacks counted).
        pacing: the configured budgets.
        bucket: ``marketdata`` or ``orders``.
        key_prefix: the Redis settings' key prefix.
    """

    def __init__(self, redis: Redis, metrics: IbkrMetrics, pacing: Pacing, bucket: str, key_prefix: str = "") -> None:
        self.limiter = RateLimiter(redis, metrics, ibkr_limits(pacing), key_prefix=key_prefix, namespace="ibkr")
        self.metrics = metrics
        self.bucket = bucket
        self._interval_s = 1.0 / ibkr_limits(pacing).for_function(bucket).rate_per_s
        self._local_next = 0.0
        self._local_lock = asyncio.Lock()

    async def __call__(self, n: int = 1) -> None:
        """Take ``n`` tokens (one per request about to be sent)."""
        for _ in range(n):
            try:
                await self.limiter.acquire(self.bucket)
            except RedisUnavailableError as exc:
                self.metrics.error_events.labels("pacing_fallback").inc()
                log.error(
                    "ibkr_pacing_local_fallback",
                    bucket=self.bucket,
                    error=str(exc),
                    action="pacing this process alone until Redis answers; other processes on this TWS are not counted",
                )
                await self._local()

    async def _local(self) -> None:
        async with self._local_lock:
            now = time.monotonic()
            wait = self._local_next - now
            self._local_next = max(now, self._local_next) + self._interval_s
        if wait > 0:
            await asyncio.sleep(wait)
