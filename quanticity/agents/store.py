"""Role ``store``: ``quotes``, ``ticks``, ``depth`` and ``reference`` → Redis (the hot store).

One agent per topic, each thin: decode, hand the record to its store, update the
ingestion index. Invalid records go to the dead-letter topic. When Redis is down (or out
of memory, unable to save, loading) the agent retries the same message with backoff until
it is back, so nothing is acknowledged unstored; a refusal that no retry changes (a key of
another type) is tried three times and the record dead-lettered with Redis's reason.

Option chains on ``quotes`` are group-committed (``ChainWriter``): a chain is handed to
a writer that writes at once when idle, and while a write is in flight the chains that
arrive meanwhile queue up and go out together in the next store call, their index entries
in one round trip. A SPY poll is ~31 chain records (one per expiry) arriving within a few
milliseconds, and one call per record paid a round trip and the call's fixed cost ~31
times (docs/benchmarks.md, the ingest chain's session 11). Nothing waits for a batch to fill.
The agent acknowledges by hand (``noack``), each event once it is written, in offset
order, and every other record on the topic waits until the chains before it are written.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any, TypeVar

import structlog
from redis.exceptions import (
    ClusterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)

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
from quanticity.storage.ingestion_index import IndexEntry, IngestionIndex, freshness_of
from quanticity.storage.option_store import OptionChainStore
from quanticity.storage.quote_store import UnderlyingQuoteStore
from quanticity.tables import latest_quotes

log = structlog.get_logger(__name__)

T = TypeVar("T")
_RETRY_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)
_STALE_AFTER = timedelta(seconds=30)
#: First words of Redis refusals that pass with time (see ``failure_passes``).
_PASSING_REFUSALS = frozenset({"OOM", "MISCONF", "LOADING", "BUSY", "READONLY", "TRYAGAIN", "MASTERDOWN", "NOREPLICAS"})
#: redis-py's classes for refusals that pass (it strips their first word from the message).
_PASSING_CLASSES = (OutOfMemoryError, ReadOnlyError, TryAgainError, ClusterDownError)
#: Tries of a refusal that no retry changes before its record is dead-lettered.
_REFUSAL_TRIES = 3
#: At most this many chains in one store call; the agent stops reading while this many wait.
CHAIN_RUN_MAX = 256
#: At stop, how long the chains still waiting may take to be written (those that do not
#: make it are not acknowledged, so the next consumer writes them).
_DRAIN_AT_STOP_S = 5.0


def failure_passes(exc: RedisError) -> bool:
    """Whether waiting can fix the failure: a lost or slow connection, or a refusal that passes.

    Refusals that pass: memory full (OOM), a save that failed (MISCONF: a full disk), a
    server loading its data or busy with a script, a read-only replica. Any other refusal
    (a key of another type, a bad argument) answers the same however often it is sent.
    """
    if not isinstance(exc, ResponseError) or isinstance(exc, _PASSING_CLASSES):
        return True
    return str(exc).split(" ", 1)[0].upper() in _PASSING_REFUSALS


async def retry_redis(operation: Callable[[], Awaitable[T]], what: str, record: Record, ctx: RoleContext) -> T:
    """Run ``operation``; on a Redis failure log, count, wait and try again.

    A failure that waiting can fix (``failure_passes``) is tried until it works, so nothing is
    acknowledged unstored. A refusal that no retry changes is tried ``_REFUSAL_TRIES``
    times and then raised, so the record is dead-lettered with Redis's reason instead of
    holding up every record behind it.
    """
    attempt = 0
    while True:
        try:
            return await operation()
        except RedisError as exc:
            delay = _RETRY_BACKOFF_S[min(attempt, len(_RETRY_BACKOFF_S) - 1)]
            ctx.metrics.redis_errors.labels(operation=what).inc()
            attempt += 1
            if not failure_passes(exc) and attempt >= _REFUSAL_TRIES:
                log.error(
                    "store_refused",
                    what=what,
                    attempts=attempt,
                    error=str(exc),
                    correlation_id=record.record_id,
                    action="dead-lettered: fix the key or the data, then replay it from the dead-letter topic",
                )
                raise
            log.error(
                "store_failed_retrying",
                what=what,
                attempt=attempt,
                retry_in_s=delay,
                error=str(exc),
                correlation_id=record.record_id,
            )
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
        await self.on_chains([chain])

    async def on_chains(self, chains: Sequence[OptionChainSnapshot]) -> None:
        """Chains in one store call (one round trip), then their index entries in one more."""
        await retry_redis(lambda: self.stores.options.store(chains), "store_chain", chains[0], self.ctx)
        entries = [
            IndexEntry(
                chain.symbol,
                f"options:{chain.expiry.isoformat()}",
                f"options:{chain.symbol}:{chain.expiry.isoformat()}:*",
                chain.event_time,
                chain.source,
                freshness_of(chain.flags),
            )
            for chain in chains
        ]
        await retry_redis(lambda: self.stores.index.record_many(entries), "index", chains[0], self.ctx)

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
        decode, stored = self.meters(topic, role)

        async def handle(event: Any) -> None:
            record = decode(event)
            await self.dispatch(record)
            stored(record)

        return handle

    def meters(self, topic: str, role: str) -> tuple[Callable[[Any], Record], Callable[[Record], None]]:
        """Decode-and-count an event, and note a record stored (ingest → stored latency)."""
        spec = self.ctx.registry.spec(topic)
        consumed = self.ctx.metrics.topic_consumed.labels(topic=topic, role=role)
        lag = self.ctx.metrics.topic_consume_lag.labels(topic=topic, role=role)
        ingestion_latency = self.ctx.metrics.ingestion_latency

        def decode(event: Any) -> Record:
            record = decode_record(topic, event.value, spec.models)
            consumed.inc()
            lag.observe(max((utc_now() - record.ingest_time).total_seconds(), 0.0))
            return record

        def stored(record: Record) -> None:
            ingestion_latency.labels(source=record.source).observe(
                max(time.time() - record.ingest_time.timestamp(), 0.0)
            )

        return decode, stored

    async def dispatch(self, record: Record) -> None:
        handler = self.by_type.get(type(record))
        if handler is not None:  # else a declared record type this role does not store; counted as consumed
            await handler(record)


class ChainWriter:
    """Group commit of the option chains of one topic's agent, which acknowledges by hand.

    ``submit`` queues a chain and starts a write if none is running; a write takes every
    chain queued (up to ``CHAIN_RUN_MAX``) into one store call, then acknowledges their
    events in order and takes the next run, until none is left. A run that fails other
    than on Redis (which is retried until it is back) is logged, counted and handled again
    chain by chain, so only the chain at fault is dead-lettered.

    Args:
        ack: acknowledges one event (the agent's stream's ``ack``).
    """

    def __init__(
        self,
        handlers: StoreHandlers,
        topic: str,
        role: str,
        sink: DeadLetterSink,
        ack: Callable[[Any], Awaitable[Any]],
    ) -> None:
        self.handlers = handlers
        self.topic = topic
        self.role = role
        self.sink = sink
        self.ack = ack
        _, self.stored = handlers.meters(topic, role)
        self.fallbacks = handlers.ctx.metrics.store_batch_fallbacks.labels(role=role)
        self.run_sizes = handlers.ctx.metrics.store_chain_batch
        self._queued: list[tuple[Any, OptionChainSnapshot]] = []
        self._writing: asyncio.Task[None] | None = None

    async def submit(self, event: Any, chain: OptionChainSnapshot) -> None:
        """Queue a chain for writing; waits only while ``CHAIN_RUN_MAX`` chains are queued already."""
        self._queued.append((event, chain))
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._write_all())
        if len(self._queued) >= CHAIN_RUN_MAX:
            await self.drain()

    async def drain(self) -> None:
        """Wait until every queued chain is written and acknowledged.

        Raises:
            Exception: whatever the write raised that it could not handle (a defect); the
                chains not acknowledged are delivered again.
        """
        while self._writing is not None:
            writing = self._writing
            try:
                await writing
            finally:
                if self._writing is writing:
                    self._writing = None

    async def stop(self) -> None:
        """Write what is queued, for at most ``_DRAIN_AT_STOP_S``; what is left stays unacknowledged."""
        try:
            async with asyncio.timeout(_DRAIN_AT_STOP_S):
                await self.drain()
        except TimeoutError:
            if self._writing is not None:
                self._writing.cancel()
                await asyncio.gather(self._writing, return_exceptions=True)
            self.handlers.ctx.metrics.redis_errors.labels(operation="store_chain").inc()
            log.warning(
                "chains_not_written_at_stop",
                role=self.role,
                chains=len(self._queued),
                detail="not acknowledged: the next consumer of the partition writes them",
            )

    async def _write_all(self) -> None:
        while self._queued:
            run, self._queued = self._queued[:CHAIN_RUN_MAX], self._queued[CHAIN_RUN_MAX:]
            await self._write(run)
            for event, _ in run:
                await self.ack(event)

    async def _write(self, run: list[tuple[Any, OptionChainSnapshot]]) -> None:
        try:
            await self.handlers.on_chains([chain for _, chain in run])
        except Exception:  # noqa: BLE001 - handled again one by one below; logged and counted
            self.fallbacks.inc()
            log.exception("chain_batch_failed", role=self.role, topic=self.topic, chains=len(run))
            for event, chain in run:
                await guarded(self.sink, self.topic, event, partial(self._one, chain))
            return
        self.run_sizes.observe(len(run))
        for _, chain in run:
            self.stored(chain)

    async def _one(self, chain: OptionChainSnapshot, _event: Any) -> None:
        await self.handlers.on_chain(chain)
        self.stored(chain)


class QuotesConsumer:
    """The ``quotes`` agent's events, acknowledged by hand: chains go to the ``ChainWriter``, the rest after them."""

    def __init__(
        self, handlers: StoreHandlers, role: str, sink: DeadLetterSink, ack: Callable[[Any], Awaitable[Any]]
    ) -> None:
        self.handlers = handlers
        self.sink = sink
        self.ack = ack
        self.chains = ChainWriter(handlers, "quotes", role, sink, ack)
        self.decode, self.stored = handlers.meters("quotes", role)
        self._record: Record | None = None

    async def handle(self, event: Any) -> None:
        self._record = None
        await guarded(self.sink, "quotes", event, self._decode)  # one that does not decode is dead-lettered
        record = self._record
        if isinstance(record, OptionChainSnapshot):
            await self.chains.submit(event, record)  # acknowledged once written
            return
        await self.chains.drain()  # the chains before this record are written first
        if record is not None:
            await guarded(self.sink, "quotes", event, partial(self._store, record))
        await self.ack(event)

    async def _decode(self, event: Any) -> None:
        self._record = self.decode(event)

    async def _store(self, record: Record, _event: Any) -> None:
        await self.handlers.dispatch(record)
        self.stored(record)


def install(app: Any, ctx: RoleContext, role: str) -> None:
    """Declare the store agents (quotes, ticks, depth, reference) and their table on ``app``."""
    dead_letters = DeadLetterSink(app, ctx, role)
    handlers = StoreHandlers(ctx, latest_quotes.latest_quotes_table(app, ctx.registry.partitions("quotes")))
    for topic in ("ticks", "depth", "reference"):
        handle = handlers.for_topic(topic, role)

        async def store_topic(
            stream: Any, handle: Callable[[Any], Awaitable[None]] = handle, topic: str = topic
        ) -> None:
            async for event in stream.events():
                await guarded(dead_letters, topic, event, handle)

        app.agent(ctx.topic(app, topic), name=f"{role}-{topic}")(store_topic)

    async def store_quotes(stream: Any) -> None:
        manual = stream.noack()
        consumer = QuotesConsumer(handlers, role, dead_letters, manual.ack)
        try:
            async for event in manual.events():
                await consumer.handle(event)
        finally:
            await consumer.chains.stop()
            await handlers.flush()  # the option chains' pending compactions

    app.agent(ctx.topic(app, "quotes"), name=f"{role}-quotes")(store_quotes)
