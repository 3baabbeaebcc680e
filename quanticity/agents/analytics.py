"""Role ``analytics``: market data → analytics kernels → Redis (``analytics:*``) and the ``analytics`` topic.

Thin agents: each decodes a record (invalid ones go to the dead-letter topic), hands it to the
services that use it and returns; the services coalesce or accumulate, call the pure kernels
of ``quanticity.analytics`` and emit through one :class:`ResultSink`, which stores with a TTL
equal to the validity and publishes an ``AnalyticsResult`` with ``source``, ``computed_at``,
``valid_until`` and the input record ids.

======================  ==========================================  ==================================
input                   kernel (service)                            output, cadence
======================  ==========================================  ==================================
quotes: option chains   Greeks + IV (``analytics_chains``)          ``analytics:greeks:{sym}[:{exp}]``,
                                                                    per update, 250 ms coalescing
quotes: L1, ticks       spot book (Greeks without a chain spot)     —
ticks: trades, 1m bars  VPIN (``analytics_micro``)                  ``analytics:vpin:{sym}``, 10 s
depth + quotes L1       liquidity (``analytics_micro``)             ``analytics:liquidity:{sym}``, 5 s
reference: macro        macro overlay (``analytics_regime``)        ``analytics:macro``, on arrival + 1 h
ticks (bars), Greeks    regime (``analytics_regime``)               ``analytics:regime`` (+ ``:log``), 60 s
bars + positions        risk attribution (``analytics_portfolio``)  ``analytics:risk`` + Parquet, 5 m
positions + Greeks      cross-asset stress (``analytics_portfolio``) ``analytics:stress``, 15 m
quotes: auction state   MOC (``analytics_moc``)                     ``analytics:moc:{sym}``, 30 s, last hour
======================  ==========================================  ==================================

The Greeks kernels are compiled (or loaded from numba's cache) before the quotes agent reads
its first record; the other kernels are warmed on the role's slow worker at start-up and their
timers wait for it. End-to-end latency (input ingest → stored) is measured for the
event-driven Greeks; timer-driven kernels report compute latency and input lag.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from quanticity.agents.analytics_bars import BarBook
from quanticity.agents.analytics_chains import GreeksService, SpotBook
from quanticity.agents.analytics_config import AnalyticsConfig
from quanticity.agents.analytics_micro import LiquidityService, VpinService
from quanticity.agents.analytics_moc import MocService
from quanticity.agents.analytics_portfolio import PortfolioService, RedisPositions
from quanticity.agents.analytics_regime import MacroService, RegimeService
from quanticity.agents.analytics_sink import ResultSink
from quanticity.agents.deadletter import DeadLetterSink, guarded
from quanticity.analytics.bars import ONE_MINUTE_NS, BarAggregator
from quanticity.analytics.cross_asset_stress import MarketState, StressPosition, stress_test
from quanticity.analytics.liquidity_monitor import liquidity_snapshot, order_books
from quanticity.analytics.regime_classifier import classify_regime
from quanticity.analytics.risk_attribution import risk_attribution
from quanticity.analytics.vpin import VPINConfig, VPINStream
from quanticity.app.context import RoleContext
from quanticity.schemas import (
    AuctionState,
    Bar,
    DepthSnapshot,
    MacroSeries,
    OptionChainSnapshot,
    Record,
    Tick,
    UnderlyingQuote,
    utc_now,
)
from quanticity.schemas.codec import decode_record

log = structlog.get_logger(__name__)

Handler = Callable[[Any], None]
TOPICS = ("quotes", "ticks", "depth", "reference")


def warm_kernels() -> None:
    """Compile (or load from numba's cache) every timer-driven kernel on tiny inputs."""
    rng = np.random.default_rng(0)
    times = np.arange(0, 180, dtype=np.int64) * ONE_MINUTE_NS // 3
    price = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, times.size)))
    BarAggregator(ONE_MINUTE_NS).add(times, price, np.ones(times.size))
    stream = VPINStream(VPINConfig(bucket_volume=5.0, window=2, sigma="rolling", sigma_window=10, sigma_min_periods=2))
    stream.update_many(np.full(40, 10.0), price[:40])
    stream.result()
    books = order_books([[100.0, 99.9]], [[10.0, 10.0]], [[100.1, 100.2]], [[10.0, 10.0]])
    liquidity_snapshot(books)
    returns = np.diff(np.log(price))
    classify_regime(returns)
    windows = {"5m": np.column_stack([returns, 0.5 * returns + rng.normal(0.0, 1e-3, returns.size)])}
    risk_attribution(windows, ["SPY", "QQQ"], [1.0, 1.0])
    market = MarketState({"SPY": 100.0}, 0.04)
    stress_test([StressPosition("SPY", 1.0, 100.0, 0.1, True, 0.2), StressPosition("SPY", 1.0)], market)


class AnalyticsRole:
    """The services of one analytics role app and the record dispatch of each topic."""

    def __init__(self, app: Any, ctx: RoleContext, role: str, config: AnalyticsConfig) -> None:
        self.ctx = ctx
        self.role = role
        self.config = config
        settings = ctx.settings.current
        prefix = settings.redis.key_prefix
        metrics = ctx.metrics.analytics
        current = lambda: ctx.settings.current  # noqa: E731 - the live (reloadable) settings
        self._slow: ThreadPoolExecutor | None = None
        self.warm = asyncio.Event()
        self.dead_letters = DeadLetterSink(app, ctx, role)
        self.sink = ResultSink(app, ctx)
        self.spots = SpotBook()
        self.greeks = GreeksService(ctx, self.sink, self.dead_letters, config, self.spots)
        self.bars = BarBook(metrics, config.regime_history_bars, ctx.redis, prefix)
        self.vpin = VpinService(self.sink, metrics, config, current, ctx.redis, prefix)
        self.liquidity = LiquidityService(self.sink, metrics, config, current)
        self.macro = MacroService(self.sink, metrics, config, current)
        self.regime = RegimeService(
            self.sink,
            metrics,
            config,
            current,
            self.bars,
            self.greeks.summaries,
            self.macro,
            store=lambda: self.sink.store,
            executor=self.slow_executor,
        )
        archive = Path(config.archive_dir) if config.archive_dir else settings.embedded.home / "archive" / "analytics"
        self.portfolio = PortfolioService(
            self.sink,
            metrics,
            config,
            current,
            RedisPositions(ctx.redis, prefix),
            self.bars,
            self.spots,
            self.greeks.summaries,
            archive.resolve(),
            store=lambda: self.sink.store,
            executor=self.slow_executor,
        )
        self.moc = MocService(self.sink, metrics, config, current, self.bars, self.liquidity, ctx.redis, prefix)

    def slow_executor(self) -> Executor | None:
        """The worker thread of the timer-driven kernels (None once the role has stopped)."""
        return self._slow

    async def start(self) -> None:
        """Start the slow worker and warm the timer-driven kernels on it."""
        if self._slow is None:
            self._slow = ThreadPoolExecutor(max_workers=1, thread_name_prefix="analytics-slow")
        loop = asyncio.get_running_loop()
        started = loop.time()
        await loop.run_in_executor(self._slow, warm_kernels)
        self.warm.set()
        log.info("analytics_kernels_warm", module="timers", seconds=round(loop.time() - started, 3))

    async def stop(self) -> None:
        """Stop the services' workers."""
        await self.macro.coalescer.close()
        await self.greeks.close()
        if self._slow is not None:
            self._slow.shutdown(wait=True, cancel_futures=True)
            self._slow = None

    def handlers(self, topic: str) -> dict[type[Record], list[Handler]]:
        """Record type → handlers for ``topic`` (types without one are consumed and ignored)."""
        if topic == "quotes":
            return {
                UnderlyingQuote: [self.spots.on_quote, self.liquidity.on_quote],
                OptionChainSnapshot: [self.greeks.submit],
                AuctionState: [self.moc.on_auction],
            }
        if topic == "ticks":
            return {
                Bar: [self.spots.on_bar, self.bars.on_bar, self.vpin.on_bar],
                Tick: [self.spots.on_tick, self.bars.on_tick, self.vpin.on_tick],
            }
        if topic == "depth":
            return {DepthSnapshot: [self.liquidity.on_depth]}
        if topic == "reference":
            return {MacroSeries: [self.macro.on_macro]}
        return {}

    def for_topic(self, topic: str) -> Callable[[Any], Awaitable[None]]:
        """The event handler of one topic: decode, meter, dispatch by record type."""
        spec = self.ctx.registry.spec(topic)
        by_type = self.handlers(topic)
        consumed = self.ctx.metrics.topic_consumed.labels(topic=topic, role=self.role)
        lag = self.ctx.metrics.topic_consume_lag.labels(topic=topic, role=self.role)

        async def handle(event: Any) -> None:
            record = decode_record(topic, event.value, spec.models)
            consumed.inc()
            lag.observe(max((utc_now() - record.ingest_time).total_seconds(), 0.0))
            for handler in by_type.get(type(record), ()):
                handler(record)

        return handle

    def timers(self) -> list[tuple[str, float, Callable[[], Awaitable[None]]]]:
        """``(module, interval, run)`` of every timer-driven kernel."""
        c = self.config
        return [
            ("vpin", c.vpin_every_s, self.vpin.tick),
            ("liquidity", c.liquidity_every_s, self.liquidity.tick),
            ("regime", c.regime_every_s, self.regime.tick),
            ("macro", c.macro_every_s, self.macro.evaluate),
            ("risk", c.risk_every_s, self.portfolio.risk_tick),
            ("stress", c.stress_every_s, self.portfolio.stress_tick),
            ("moc", c.moc_every_s, self.moc.tick),
        ]

    async def run_timer(self, module: str, run: Callable[[], Awaitable[None]]) -> None:
        """One timer run: after the warm-up, with every failure logged and counted, never raised."""
        if not self.warm.is_set():
            return
        try:
            await run()
        except Exception:  # noqa: BLE001 - a timer must survive its kernel's bug; logged and counted
            self.ctx.metrics.analytics.failures.labels(module=module, reason="exception").inc()
            log.exception("analytics_timer_failed", module=module)


def declare_agents(app: Any, services: AnalyticsRole) -> None:
    """One agent per input topic; the quotes agent owns the workers' lifecycle."""
    role, ctx = services.role, services.ctx

    async def consume_quotes(stream: Any) -> None:
        handle = services.for_topic("quotes")
        await services.greeks.start()  # the Greeks kernels are ready before the first chain
        try:
            async for event in stream.events():
                await guarded(services.dead_letters, "quotes", event, handle)
        finally:
            await services.stop()

    def consumer(topic: str) -> Callable[[Any], Awaitable[None]]:
        async def consume(stream: Any) -> None:
            handle = services.for_topic(topic)
            async for event in stream.events():
                await guarded(services.dead_letters, topic, event, handle)

        return consume

    app.agent(ctx.topic(app, "quotes"), name=f"{role}-quotes")(consume_quotes)
    for topic in TOPICS[1:]:
        app.agent(ctx.topic(app, topic), name=f"{role}-{topic}")(consumer(topic))


def declare_timers(app: Any, services: AnalyticsRole) -> None:
    """The warm-up task and one timer per timer-driven kernel."""

    @app.task
    async def warm_timer_kernels() -> None:
        await services.start()

    # Faust hands the app to a timer function that takes any parameter: the timers take none.
    def timer(module: str, run: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        async def tick() -> None:
            await services.run_timer(module, run)

        return tick

    for module, interval, run in services.timers():
        app.timer(interval, name=f"{services.role}-{module}")(timer(module, run))


def installer(config: AnalyticsConfig | None = None) -> Callable[[Any, RoleContext, str], None]:
    """An ``install`` with fixed constants (tests, benchmarks); None reads them from the settings."""

    def install_with(app: Any, ctx: RoleContext, role: str) -> None:
        services = AnalyticsRole(app, ctx, role, config or AnalyticsConfig.from_settings(ctx.settings.current))
        declare_agents(app, services)
        declare_timers(app, services)

    return install_with


def install(app: Any, ctx: RoleContext, role: str) -> None:
    """Declare the analytics agents and timers on ``app`` (constants from the settings)."""
    installer()(app, ctx, role)
