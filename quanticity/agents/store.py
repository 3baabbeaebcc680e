"""Role ``store``: ``quotes``, ``ticks``, ``depth`` and ``reference`` → Redis (the hot store).

One agent per topic, each thin: decode, hand the record to its store, update the
ingestion index. Invalid records go to the dead-letter topic. When Redis is down the
agent retries the same message with backoff until it is back, so nothing is acknowledged
unstored.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import structlog
from redis.exceptions import RedisError

from quanticity.agents.deadletter import DeadLetterSink, guarded
from quanticity.app.context import RoleContext
from quanticity.schemas import (
    AuctionState,
    Bar,
    DepthSnapshot,
    IndicatorSeries,
    MacroSeries,
    NewsItem,
    OptionChainSnapshot,
    OptionQuote,
    OptionQuoteBatch,
    Record,
    Tick,
    UnderlyingQuote,
    utc_now,
)
from quanticity.schemas.codec import decode_record
from quanticity.storage import reference_store as refs
from quanticity.storage.ibkr_depth_store import DepthStore
from quanticity.storage.ibkr_marketstore import IbkrMarketStore
from quanticity.storage.ingestion_index import IngestionIndex, freshness_of
from quanticity.storage.option_store import OptionChainStore
from quanticity.storage.quote_store import UnderlyingQuoteStore
from quanticity.tables import latest_quotes

log = structlog.get_logger(__name__)

T = TypeVar("T")
_RETRY_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)
_STALE_AFTER = timedelta(seconds=30)


async def retry_redis(operation: Callable[[], Awaitable[T]], what: str, record: Record, ctx: RoleContext) -> T:
    """Run ``operation``; on a Redis failure log, count, wait and try again until it works."""
    attempt = 0
    while True:
        try:
            return await operation()
        except RedisError as exc:
            delay = _RETRY_BACKOFF_S[min(attempt, len(_RETRY_BACKOFF_S) - 1)]
            ctx.metrics.redis_errors.labels(operation=what).inc()
            log.error(
                "store_failed_retrying",
                what=what,
                attempt=attempt + 1,
                retry_in_s=delay,
                error=str(exc),
                correlation_id=record.record_id,
            )
            attempt += 1
            await asyncio.sleep(delay)


@dataclass
class Stores:
    """The stores of the role, created lazily on the running loop (the Redis client binds to it)."""

    quotes: UnderlyingQuoteStore
    options: OptionChainStore
    reference: refs.ReferenceStore
    index: IngestionIndex
    ibkr: IbkrMarketStore
    depth: DepthStore

    @classmethod
    def build(cls, ctx: RoleContext) -> Stores:
        writer = ctx.timeseries_writer()
        prefix = writer.key_prefix
        return cls(
            UnderlyingQuoteStore(writer),
            OptionChainStore(writer),
            refs.ReferenceStore(writer),
            IngestionIndex(ctx.redis(), prefix),
            IbkrMarketStore(writer),
            DepthStore(ctx.redis(), ctx.settings.current.ibkr.depth.ttl_s, prefix),
        )


class StoreHandlers:
    """Per-record-type handlers of the store role (one instance per role app)."""

    def __init__(self, ctx: RoleContext, table: Any) -> None:
        self.ctx = ctx
        self.table = table
        self._stores: Stores | None = None
        self.by_type: dict[type[Record], Callable[[Any], Awaitable[None]]] = {
            UnderlyingQuote: self.on_quote,
            OptionChainSnapshot: self.on_chain,
            OptionQuote: self.on_ibkr,
            OptionQuoteBatch: self.on_ibkr,
            AuctionState: self.on_ibkr,
            Tick: self.on_tick,
            DepthSnapshot: self.on_depth,
            Bar: self.on_bar,
            IndicatorSeries: self.on_indicator,
            MacroSeries: self.on_macro,
            NewsItem: self.on_news,
        }

    async def flush(self) -> None:
        """Write the option compactions still pending, as the role stops.

        What cannot be written now (Redis gone, or slower than 5 s) is not lost: the next
        store to start writes it from the raw series (``OptionChainStore``).
        """
        options = self._stores.options if self._stores is not None else None
        if options is None or not options.pending_compactions:
            return
        try:
            async with asyncio.timeout(5.0):
                await options.flush()
        except (RedisError, TimeoutError) as exc:
            self.ctx.metrics.redis_errors.labels(operation="flush_compactions").inc()
            log.warning(
                "compactions_not_flushed",
                pending=options.pending_compactions,
                error=str(exc) or type(exc).__name__,
                detail="the next store to start writes them from the raw series",
            )

    @property
    def stores(self) -> Stores:
        if self._stores is None:
            self._stores = Stores.build(self.ctx)
        return self._stores

    async def on_ibkr(self, record: UnderlyingQuote | OptionQuote | OptionQuoteBatch | AuctionState | Bar) -> None:
        await retry_redis(lambda: self.stores.ibkr.store([record]), "store_ibkr", record, self.ctx)

    async def on_tick(self, tick: Tick) -> None:
        await retry_redis(lambda: self.stores.ibkr.store_ticks([tick]), "store_tick", tick, self.ctx)

    async def on_depth(self, snapshot: DepthSnapshot) -> None:
        await retry_redis(lambda: self.stores.depth.store(snapshot), "store_depth", snapshot, self.ctx)

    async def on_quote(self, quote: UnderlyingQuote) -> None:
        if quote.source == "ibkr":
            await self.on_ibkr(quote)  # ibkr:underlying:* (48 h raw); AlphaVantage/demo quotes keep underlyings:*
            return
        decision = latest_quotes.classify(self.table.get(quote.symbol), quote)
        if decision == "duplicate":
            return
        fresh = latest_quotes.freshness(quote, utc_now(), _STALE_AFTER)
        await retry_redis(
            lambda: self.stores.quotes.store([quote], freshness=fresh, update_meta=decision == "store"),
            "store_quote",
            quote,
            self.ctx,
        )
        if decision == "store":
            self.table[quote.symbol] = latest_quotes.table_value(quote)

    async def on_chain(self, chain: OptionChainSnapshot) -> None:
        expiry = chain.expiry.isoformat()
        await retry_redis(lambda: self.stores.options.store([chain]), "store_chain", chain, self.ctx)
        await retry_redis(
            lambda: self.stores.index.record(
                chain.symbol,
                f"options:{expiry}",
                keys=f"options:{chain.symbol}:{expiry}:*",
                event_time=chain.event_time,
                source=chain.source,
                freshness=freshness_of(chain.flags),
            ),
            "index",
            chain,
            self.ctx,
        )

    async def on_bar(self, bar: Bar) -> None:
        if bar.source == "ibkr":
            await self.on_ibkr(bar)  # ibkr:bars:{symbol}:5s with the 1m/2m/5m roll-up rules
            return
        specs, samples = refs.bar_samples([bar])
        await retry_redis(
            lambda: self.stores.reference.store_series(specs, samples, "bars"), "store_bar", bar, self.ctx
        )

    async def on_indicator(self, series: IndicatorSeries) -> None:
        specs, samples = refs.indicator_samples(series)
        await retry_redis(
            lambda: self.stores.reference.store_series(specs, samples, "indicators"),
            "store_indicator",
            series,
            self.ctx,
        )
        if series.timestamps:
            await retry_redis(
                lambda: self.stores.index.record(
                    series.symbol,
                    f"indicator:{series.function}",
                    keys=f"indicators:{series.symbol}:{series.function}:*",
                    event_time=series.timestamps[-1],
                    source=series.source,
                    freshness="fresh",
                ),
                "index",
                series,
                self.ctx,
            )

    async def on_macro(self, series: MacroSeries) -> None:
        specs, samples = refs.macro_samples(series)
        await retry_redis(
            lambda: self.stores.reference.store_series(specs, samples, "macro"), "store_macro", series, self.ctx
        )

    async def on_news(self, item: NewsItem) -> None:
        await retry_redis(lambda: self.stores.reference.store_news([item]), "store_news", item, self.ctx)

    def for_topic(self, topic: str, role: str) -> Callable[[Any], Awaitable[None]]:
        """The event handler of one topic: decode, meter, dispatch by record type."""
        spec = self.ctx.registry.spec(topic)
        consumed = self.ctx.metrics.topic_consumed.labels(topic=topic, role=role)
        lag = self.ctx.metrics.topic_consume_lag.labels(topic=topic, role=role)
        ingestion_latency = self.ctx.metrics.ingestion_latency

        async def handle(event: Any) -> None:
            record = decode_record(topic, event.value, spec.models)
            consumed.inc()
            lag.observe(max((utc_now() - record.ingest_time).total_seconds(), 0.0))
            handler = self.by_type.get(type(record))
            if handler is None:
                return  # a declared record type this role does not store; counted as consumed
            await handler(record)
            ingestion_latency.labels(source=record.source).observe(
                max(time.time() - record.ingest_time.timestamp(), 0.0)
            )

        return handle


def install(app: Any, ctx: RoleContext, role: str) -> None:
    """Declare the store agents (quotes, ticks, depth, reference) and their table on ``app``."""
    dead_letters = DeadLetterSink(app, ctx, role)
    handlers = StoreHandlers(ctx, latest_quotes.latest_quotes_table(app, ctx.registry.partitions("quotes")))
    for topic in ("quotes", "ticks", "depth", "reference"):
        handle = handlers.for_topic(topic, role)

        async def store_topic(
            stream: Any, handle: Callable[[Any], Awaitable[None]] = handle, topic: str = topic
        ) -> None:
            try:
                async for event in stream.events():
                    await guarded(dead_letters, topic, event, handle)
            finally:
                if topic == "quotes":  # the topic of the option chains
                    await handlers.flush()

        app.agent(ctx.topic(app, topic), name=f"{role}-{topic}")(store_topic)
