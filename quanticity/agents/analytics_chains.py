"""The Greeks path of the analytics role: chain snapshots → coalesce → compute → Redis + topic.

Snapshots are coalesced per (symbol, expiry) (``analytics_coalesce``), computed by
:func:`compute_chain_greeks` (in the role's worker thread when large, so the event loop keeps
consuming), and emitted through the :class:`ResultSink`. Underlying quotes, bars and trades keep
a :class:`SpotBook` for chains that carry no spot of their own.

The kernels are compiled (or loaded from numba's cache) by :meth:`GreeksService.start` before
the agent reads its first record: JIT compilation never lands on a live chain.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta

import structlog

from quanticity.agents.analytics_coalesce import Coalescer
from quanticity.agents.analytics_config import AnalyticsConfig
from quanticity.agents.analytics_greeks import (
    ChainGreeks,
    ChainNotComputable,
    Spot,
    SummaryBook,
    compute_chain_greeks,
    horizon_of,
    input_lag_s,
    valid_until,
)
from quanticity.agents.analytics_sink import Emitter
from quanticity.agents.deadletter import DeadLetterSink
from quanticity.analytics import AnalyticsInputError
from quanticity.app.context import RoleContext
from quanticity.errors import RecordDecodeError
from quanticity.schemas import AnalyticsResult, Bar, OptionChainSnapshot, Tick, UnderlyingQuote, stable_id, utc_now
from quanticity.storage.analytics_store import ResultWrite, greeks_key, greeks_summary_key

log = structlog.get_logger(__name__)

MODULE = "greeks"
ChainKey = tuple[str, date]


class SpotBook:
    """The latest underlying price per symbol, from quotes, bars and trades (newest event wins)."""

    def __init__(self) -> None:
        self._latest: dict[str, Spot] = {}

    def _offer(self, symbol: str, spot: Spot) -> None:
        current = self._latest.get(symbol)
        if current is None or spot.event_time >= current.event_time:
            self._latest[symbol] = spot

    def on_quote(self, quote: UnderlyingQuote) -> None:
        """An L1 quote: its mid, else its last."""
        price = quote.mid if quote.mid is not None else quote.last
        if price is not None and price > 0.0:
            self._offer(quote.symbol, Spot(price, "quote", quote.event_time, quote.record_id))

    def on_bar(self, bar: Bar) -> None:
        """A bar: its close, as of the bar's end."""
        if bar.close > 0.0:
            end = bar.event_time + timedelta(seconds=bar.interval_s)
            self._offer(bar.symbol, Spot(bar.close, "bar", end, bar.record_id))

    def on_tick(self, tick: Tick) -> None:
        """A trade: its price."""
        if tick.kind == "trade" and tick.price is not None and tick.price > 0.0:
            self._offer(tick.symbol, Spot(tick.price, "trade", tick.event_time, tick.record_id))

    def get(self, symbol: str) -> Spot | None:
        """The latest spot of ``symbol``, if any was seen."""
        return self._latest.get(symbol)


def warm_chain_kernels(config: AnalyticsConfig | None = None) -> None:
    """Compile (or load from numba's cache) the chain kernels: IV solver, Greeks, summary."""
    compute_chain_greeks(_warm_up_chain(), spot_hint=None, config=config or AnalyticsConfig())


def _warm_up_chain() -> OptionChainSnapshot:
    """Four contracts that take every branch: mid IV, provider IV, cross-check, parity spot."""
    now = utc_now()
    return OptionChainSnapshot(
        symbol="WARMUP",
        expiry=(now + timedelta(days=30)).date(),
        strike=[95.0, 95.0, 105.0, 105.0],
        right=["C", "P", "C", "P"],
        bid=[7.0, 1.5, 1.9, 6.2],
        ask=[7.2, 1.7, 2.1, 6.4],
        last=[None] * 4,
        volume=[None] * 4,
        open_interest=[10.0, 10.0, 10.0, None],
        implied_vol=[0.2, 0.2, 0.2, 0.2],
        delta=[0.7, -0.3, 0.3, -0.7],
        gamma=[0.03, 0.03, 0.03, None],
        theta=[-0.02, -0.02, -0.02, -0.02],
        vega=[0.1, 0.1, 0.1, 0.1],
        rho=[0.05, -0.05, 0.05, -0.05],
        record_id="warm-up",
        event_time=now,
        source="platform",
        run_id="warm-up",
        mode="sim",
    )


class GreeksService:
    """Computes, stores and publishes the Greeks of every chain snapshot the role consumes.

    Args:
        ctx: settings and metrics.
        sink: where results go.
        dead_letters: where snapshots whose computation raised go, with the reason.
        config: the role's constants.
        spots: the spot book fed by the role's quote, bar and tick handlers.
        clock: now (tests pass their own).
    """

    def __init__(
        self,
        ctx: RoleContext,
        sink: Emitter,
        dead_letters: DeadLetterSink,
        config: AnalyticsConfig,
        spots: SpotBook,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.ctx = ctx
        self.sink = sink
        self.dead_letters = dead_letters
        self.config = config
        self.spots = spots
        self.clock = clock
        self.metrics = ctx.metrics.analytics
        self.summaries = SummaryBook()
        self.coalescer: Coalescer[ChainKey, OptionChainSnapshot] = Coalescer(
            config.coalesce_window_s,
            self._run,
            on_superseded=lambda _key: self.metrics.coalesced.labels(module=MODULE).inc(),
            on_error=lambda _key, exc: self.metrics.failures.labels(module=MODULE, reason="internal").inc(),
        )
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        """Create the worker thread and compile (or load) the kernels on it."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="analytics-greeks")
        loop = asyncio.get_running_loop()
        started = loop.time()
        await loop.run_in_executor(
            self._executor, lambda: compute_chain_greeks(_warm_up_chain(), spot_hint=None, config=self.config)
        )
        log.info("analytics_kernels_warm", module=MODULE, seconds=round(loop.time() - started, 3))

    async def close(self) -> None:
        """Cancel pending computations and stop the worker thread."""
        await self.coalescer.close()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def submit(self, chain: OptionChainSnapshot) -> None:
        """Queue a snapshot; a newer one of the same (symbol, expiry) replaces it until it runs."""
        self.coalescer.submit((chain.symbol, chain.expiry), chain)

    async def _compute(self, chain: OptionChainSnapshot) -> ChainGreeks:
        def work() -> ChainGreeks:
            return compute_chain_greeks(
                chain, spot_hint=self.spots.get(chain.symbol), config=self.config, clock=self.clock
            )

        if self._executor is not None and len(chain.strike) >= self.config.executor_min_rows:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work)
        return work()

    async def _run(self, key: ChainKey, chain: OptionChainSnapshot) -> None:
        now = self.clock()
        horizon = horizon_of(chain.event_time, chain.expiry)
        self.metrics.input_lag.labels(module=MODULE, horizon=horizon).set(
            input_lag_s(chain.event_time, chain.ingest_time, now)
        )
        until = valid_until(chain.event_time, horizon, self.config)
        if until <= now:
            # The input is older than a result of it may be: nothing fresh can come of it.
            self.metrics.stale_results.labels(module=MODULE).inc()
            log.debug("analytics_input_stale", symbol=chain.symbol, expiry=str(chain.expiry), horizon=horizon)
            return
        try:
            result = await self._compute(chain)
        except ChainNotComputable as exc:
            self.metrics.failures.labels(module=MODULE, reason=exc.reason).inc()
            log.warning("greeks_not_computable", reason=exc.reason, detail=str(exc), correlation_id=chain.record_id)
            return
        except Exception as exc:  # noqa: BLE001 - a kernel bug must not stop the key; logged, counted, dead-lettered
            reason = "invalid_input" if isinstance(exc, AnalyticsInputError) else "exception"
            self.metrics.failures.labels(module=MODULE, reason=reason).inc()
            log.exception(
                "greeks_failed", symbol=chain.symbol, expiry=str(chain.expiry), correlation_id=chain.record_id
            )
            error = RecordDecodeError("quotes", "analytics_error", f"greeks: {type(exc).__name__}: {exc}")
            await self.dead_letters.route(error, chain.model_dump(mode="json"), key=chain.symbol.encode())
            return
        self.metrics.compute_latency_ms.labels(module=MODULE).observe(result.compute_ms)
        summary = result.summary
        summary_doc, summary_until = self.summaries.update(chain.symbol, summary, self.clock())
        expiry = chain.expiry.isoformat()
        writes = [
            ResultWrite(greeks_key(chain.symbol, expiry), MODULE, result.document, summary.valid_until),
            ResultWrite(greeks_summary_key(chain.symbol), MODULE, summary_doc, summary_until),
        ]
        settings = self.ctx.settings.current
        record = AnalyticsResult(
            record_id=stable_id("analytics", MODULE, chain.symbol, expiry, chain.record_id),
            event_time=chain.event_time,
            source=chain.source,
            run_id=settings.run_id,
            mode=settings.mode,
            symbol=chain.symbol,
            kind=MODULE,
            computed_at=summary.computed_at,
            valid_until=summary.valid_until,
            values={k: v if v is None or math.isfinite(v) else None for k, v in summary.values().items()},
            input_ids=list(summary.input_ids),
        )
        await self.sink.emit(MODULE, chain.symbol, writes, record, ingest_time=chain.ingest_time)
