"""Role ``store``: ``quotes`` → Redis TimeSeries, one ``TS.MADD`` per message.

Invalid records go to the dead-letter topic. When Redis is down the agent retries the
same message with backoff until it is back, so nothing is acknowledged unstored.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import structlog
from redis.exceptions import RedisError

from quanticity.agents.deadletter import DeadLetterSink, guarded
from quanticity.app.context import RoleContext
from quanticity.schemas import UnderlyingQuote, utc_now
from quanticity.schemas.codec import decode_record
from quanticity.storage.quote_store import UnderlyingQuoteStore
from quanticity.storage.redis_timeseries import TimeSeriesWriter
from quanticity.tables import latest_quotes

log = structlog.get_logger(__name__)

_RETRY_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)
_STALE_AFTER = timedelta(seconds=30)


async def store_with_retry(
    store: UnderlyingQuoteStore, quote: UnderlyingQuote, freshness: str, ctx: RoleContext, *, update_meta: bool = True
) -> None:
    """Write ``quote``; on a Redis failure log, count, wait and try again until it works."""
    attempt = 0
    while True:
        try:
            await store.store([quote], freshness=freshness, update_meta=update_meta)
            return
        except RedisError as exc:
            delay = _RETRY_BACKOFF_S[min(attempt, len(_RETRY_BACKOFF_S) - 1)]
            ctx.metrics.redis_errors.labels(operation="store_quote").inc()
            log.error(
                "store_failed_retrying",
                symbol=quote.symbol,
                attempt=attempt + 1,
                retry_in_s=delay,
                error=str(exc),
                correlation_id=quote.record_id,
            )
            attempt += 1
            await asyncio.sleep(delay)


def install(app: Any, ctx: RoleContext, role: str) -> None:
    """Declare the quote-store agent and its table on ``app``."""
    spec = ctx.registry.spec("quotes")
    quotes_topic = ctx.topic(app, "quotes")
    dead_letters = DeadLetterSink(app, ctx, role)
    table = latest_quotes.latest_quotes_table(app, ctx.registry.partitions("quotes"))
    consumed = ctx.metrics.topic_consumed.labels(topic="quotes", role=role)
    lag = ctx.metrics.topic_consume_lag.labels(topic="quotes", role=role)
    stored: dict[str, UnderlyingQuoteStore] = {}

    def quote_store() -> UnderlyingQuoteStore:
        # Created lazily on the running loop: the Redis client binds to it.
        if "store" not in stored:
            writer = TimeSeriesWriter(ctx.redis(), ctx.metrics, ctx.settings.current.redis.key_prefix)
            stored["store"] = UnderlyingQuoteStore(writer)
        return stored["store"]

    async def handle(event: Any) -> None:
        record = decode_record("quotes", event.value, spec.models)
        consumed.inc()
        now = utc_now()
        lag.observe(max((now - record.ingest_time).total_seconds(), 0.0))
        if not isinstance(record, UnderlyingQuote):
            # Option chains are stored by the AlphaVantage/IBKR stores (Modules 1 and 2).
            return
        decision = latest_quotes.classify(table.get(record.symbol), record)
        if decision == "duplicate":
            return
        fresh = latest_quotes.freshness(record, now, _STALE_AFTER)
        await store_with_retry(quote_store(), record, fresh, ctx, update_meta=decision == "store")
        ctx.metrics.ingestion_latency.labels(source=record.source).observe(
            max(time.time() - record.ingest_time.timestamp(), 0.0)
        )
        if decision == "store":
            table[record.symbol] = latest_quotes.table_value(record)

    @app.agent(quotes_topic, name=f"{role}-quotes")
    async def store_quotes(stream: Any) -> None:
        async for event in stream.events():
            await guarded(dead_letters, "quotes", event, handle)
