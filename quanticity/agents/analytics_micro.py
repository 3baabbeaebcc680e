"""Microstructure kernels of the analytics role: VPIN (10 s cadence) and liquidity (5 s cadence).

- VPIN: trades on ``ticks`` → 1-minute bars (``bars.BarAggregator``) → ``vpin.VPINStream`` per
  symbol (bulk volume classification with a rolling sigma, ``V = ADV / 50``, ``n = 50``). A
  symbol without a trade feed uses the 1-minute ``Bar`` records on ``ticks`` instead. ADV comes
  from the configuration, else from the stored 1-minute bar history
  (``bars:{symbol}:60s:volume``, complete sessions only), else from the volume traded so far
  scaled to a session once enough of it has passed. The stream starts with the stored bars
  (``bars:{symbol}:60s:close|volume``, the last eight days) that precede the first bar this
  run saw: ``n`` buckets hold one ADV of volume, so a stream fed only from its start would
  publish nothing for a whole session after every restart.
- Liquidity: the latest L2 snapshot of each venue (``depth``), merged into one consolidated
  book per symbol, or the L1 quote (``quotes``) when no depth is fresh → ``liquidity_snapshot``
  for all symbols in one call, plus the slippage of ``liquidity_order_size`` shares both ways.

Results: ``analytics:vpin:{symbol}`` and ``analytics:liquidity:{symbol}`` (TTL = validity) and
one ``AnalyticsResult`` each on ``analytics``.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from quanticity.agents.analytics_bars import stored_minute_bars
from quanticity.agents.analytics_config import AnalyticsConfig
from quanticity.agents.analytics_greeks import ET
from quanticity.agents.analytics_sink import Emitter, Provenance, kernel_result
from quanticity.analytics.bars import ONE_MINUTE_NS, BarAggregator, Bars
from quanticity.analytics.inputs import AnalyticsInputError
from quanticity.analytics.liquidity_monitor import (
    BookStatus,
    LiquidityScoreParams,
    LiquiditySnapshot,
    OrderBooks,
    SlippageEstimate,
    liquidity_snapshot,
    order_books,
    walk_book,
)
from quanticity.analytics.vpin import VPINConfig, VPINStatus, VPINStream, bucket_volume_from_adv
from quanticity.observability.analytics_metrics import AnalyticsMetrics
from quanticity.schemas import Bar, DepthSnapshot, Source, Tick, UnderlyingQuote, utc_now
from quanticity.settings.model import Settings
from quanticity.storage.analytics_store import result_key

log = structlog.get_logger(__name__)

SESSION_SECONDS = 6.5 * 3600.0
_RECENT_IDS = 3  # input ids carried by a streaming result: the newest few
_HISTORY_REREAD_S = 300.0  # stored bar history re-read at most this often while a symbol waits for ADV


def _ns(t: datetime) -> int:
    return int(t.timestamp() * 1e9)


def session_fraction(now: datetime) -> float:
    """Share of today's regular session (09:30–16:00 ET) that has passed, in [0, 1]."""
    et = now.astimezone(ET)
    opened = et.replace(hour=9, minute=30, second=0, microsecond=0)
    return min(max((et - opened).total_seconds() / SESSION_SECONDS, 0.0), 1.0)


def adv_from_history(samples: Sequence[tuple[int, float]], min_bars: int = 300) -> float | None:
    """Average daily volume from 1-minute bar volumes ``(ms, volume)``: complete ET sessions only.

    A day counts when it has at least ``min_bars`` bars (a full session has 390).
    """
    days: dict[object, list[float]] = {}
    for ts, volume in samples:
        day = datetime.fromtimestamp(ts / 1000.0, tz=ET).date()
        days.setdefault(day, []).append(volume)
    full = [sum(v) for v in days.values() if len(v) >= min_bars]
    return sum(full) / len(full) if full else None


@dataclass
class _VpinSymbol:
    aggregator: BarAggregator = field(default_factory=lambda: BarAggregator(ONE_MINUTE_NS))
    stream: VPINStream | None = None
    adv: float | None = None
    adv_source: str = ""
    pending_volume: list[float] = field(default_factory=list)
    pending_close: list[float] = field(default_factory=list)
    trades: bool = False
    last_bar_start_ns: int = -1
    first_bar_start_ns: int | None = None  # the first bar this run fed: stored history stops before it
    history_bars: int = 0  # stored bars the stream started with
    history: list[tuple[int, float, float]] = field(default_factory=list)  # stored bars read while waiting for ADV
    history_read_at: datetime | None = None
    last_event: datetime | None = None
    last_ingest: datetime | None = None
    source: Source = "platform"
    recent_ids: deque[str] = field(default_factory=lambda: deque(maxlen=_RECENT_IDS))


class VpinService:
    """Per-symbol VPIN from trades (or 1-minute bars), published on a timer.

    Args:
        emitter: where results go.
        metrics: the analytics metrics.
        config: bucket divisor, window, cadence, validity, ADV.
        settings: run id and mode for the records.
        redis: for the 1-minute bar history (ADV); None = no history lookups.
        key_prefix: the deployment's Redis key prefix.
        clock: now.
    """

    MODULE = "vpin"

    def __init__(
        self,
        emitter: Emitter,
        metrics: AnalyticsMetrics,
        config: AnalyticsConfig,
        settings: Callable[[], Settings],
        redis: Callable[[], Redis] | None = None,
        key_prefix: str = "",
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.emitter = emitter
        self.metrics = metrics
        self.config = config
        self.settings = settings
        self.redis = redis
        self.key_prefix = key_prefix
        self.clock = clock
        self.symbols: dict[str, _VpinSymbol] = {}

    def _state(self, symbol: str) -> _VpinSymbol:
        return self.symbols.setdefault(symbol, _VpinSymbol())

    def _note(
        self, state: _VpinSymbol, event_time: datetime, ingest_time: datetime, record_id: str, source: Source
    ) -> None:
        state.last_event = event_time if state.last_event is None else max(state.last_event, event_time)
        state.last_ingest = ingest_time
        state.source = source
        state.recent_ids.append(record_id)

    def on_tick(self, tick: Tick) -> None:
        """A trade: into the symbol's 1-minute bars (bid/ask ticks are not VPIN input)."""
        if tick.kind != "trade" or not tick.price or not tick.size:
            return
        state = self._state(tick.symbol)
        state.trades = True
        self._note(state, tick.event_time, tick.ingest_time, tick.record_id, tick.source)
        update = state.aggregator.add(_ns(tick.event_time), tick.price, tick.size)
        if update.late_ticks:
            self.metrics.failures.labels(module=self.MODULE, reason="late_tick").inc(update.late_ticks)
        self._feed(state, update.completed)

    def on_bar(self, bar: Bar) -> None:
        """A 1-minute bar, used only for symbols without a trade feed (never both: no double count)."""
        if bar.interval_s != 60:
            return
        state = self._state(bar.symbol)
        start = _ns(bar.event_time)
        if state.trades or start <= state.last_bar_start_ns:
            return
        self._note(state, bar.event_time + timedelta(seconds=60), bar.ingest_time, bar.record_id, bar.source)
        state.last_bar_start_ns = start
        if state.first_bar_start_ns is None:
            state.first_bar_start_ns = start
        self._feed_arrays(state, [bar.volume], [bar.close])

    def _feed(self, state: _VpinSymbol, bars: Bars) -> None:
        if len(bars):
            state.last_bar_start_ns = int(bars.start_ns[-1])
            if state.first_bar_start_ns is None:
                state.first_bar_start_ns = int(bars.start_ns[0])
            self._feed_arrays(state, bars.volume.tolist(), bars.close.tolist())

    def _feed_arrays(self, state: _VpinSymbol, volume: list[float], close: list[float]) -> None:
        if state.stream is None:
            state.pending_volume.extend(volume)
            state.pending_close.extend(close)
            return
        state.stream.update_many(volume, close)

    async def _resolve_adv(self, symbol: str, state: _VpinSymbol, now: datetime) -> None:
        history = await self._history(symbol, state, now)
        adv, source = self.config.average_daily_volume.get(symbol), "config"
        if adv is None and history:
            adv, source = adv_from_history([(ts, volume) for ts, _, volume in history]), "history"
        if adv is None:
            elapsed = session_fraction(now)
            traded = sum(state.pending_volume)
            if elapsed >= self.config.vpin_adv_min_session_fraction and traded > 0.0:
                adv, source = traded / elapsed, "session_so_far"
        if adv is None or not adv > 0.0:
            return
        if state.history_read_at != now:  # decided on an earlier read: prime from the store as it is now
            history = await self._history(symbol, state, now, reread=True)
        vpin_config = VPINConfig(
            bucket_volume=bucket_volume_from_adv(adv, self.config.vpin_bucket_divisor),
            window=self.config.vpin_window_buckets,
            sigma="rolling",
        )
        state.stream = VPINStream(vpin_config)
        state.adv, state.adv_source = adv, source
        # Stored bars before the first one this run fed (those after it are this run's own, counted already).
        cut_ms = math.inf if state.first_bar_start_ns is None else state.first_bar_start_ns / 1_000_000
        primed = [(close, volume) for ts, close, volume in history if ts < cut_ms]
        if primed:
            state.stream.update_many([volume for _, volume in primed], [close for close, _ in primed])
        state.history_bars = len(primed)
        state.history = []  # primed: not needed any more
        if state.pending_volume:
            state.stream.update_many(state.pending_volume, state.pending_close)
        state.pending_volume.clear()
        state.pending_close.clear()
        log.info("vpin_started", symbol=symbol, adv=round(adv), adv_source=source, history_bars=len(primed))

    async def _history(
        self, symbol: str, state: _VpinSymbol, now: datetime, *, reread: bool = False
    ) -> list[tuple[int, float, float]]:
        """The stored 1-minute bars of the last eight days (``analytics_bars.stored_minute_bars``).

        Read at most once per ``_HISTORY_REREAD_S`` while the symbol waits for an ADV (it
        may wait a whole pre-market, and the stored week does not change every 10 s), unless
        ``reread``. Empty without Redis, without stored bars, or when Redis fails (counted
        and logged).
        """
        if self.redis is None:
            return []
        last = state.history_read_at
        if not reread and last is not None and (now - last).total_seconds() < _HISTORY_REREAD_S:
            return state.history
        since = int((now - timedelta(days=8)).timestamp() * 1000)
        try:
            state.history = await stored_minute_bars(self.redis(), self.key_prefix, symbol, since)
        except RedisError as exc:
            self.metrics.failures.labels(module=self.MODULE, reason="redis").inc()
            log.warning("vpin_bar_history_unavailable", symbol=symbol, error=str(exc))
            return []
        state.history_read_at = now
        return state.history

    async def tick(self) -> None:
        """The 10 s cadence: close quiet bars, start streams whose ADV is known, publish VPINs."""
        now = self.clock()
        for symbol, state in list(self.symbols.items()):
            self._feed(state, state.aggregator.close_until(_ns(now)))
            if state.stream is None:
                await self._resolve_adv(symbol, state, now)
            if state.stream is not None:
                await self._publish(symbol, state, now)

    async def _publish(self, symbol: str, state: _VpinSymbol, now: datetime) -> None:
        assert state.stream is not None and state.last_event is not None  # a stream starts after an input
        started = time.perf_counter()
        result = state.stream.result()
        self.metrics.compute_latency_ms.labels(module=self.MODULE).observe((time.perf_counter() - started) * 1000.0)
        self.metrics.input_lag.labels(module=self.MODULE, horizon="intraday").set(
            max((now - state.last_event).total_seconds(), 0.0)
        )
        if result.status == VPINStatus.INSUFFICIENT_BUCKETS or result.latest_vpin is None:
            return  # fewer than n buckets: nothing to publish yet
        # The newest bar closes at most one bar after its last trade; the value holds a validity after that.
        until = state.last_event + timedelta(seconds=self.config.vpin_bar_s + self.config.vpin_validity_s)
        if until <= now:
            log.debug("vpin_inputs_quiet", symbol=symbol, last_event=state.last_event.isoformat())
            return
        self.metrics.vpin.labels(symbol=symbol).set(result.latest_vpin)
        if result.cdf is not None:
            self.metrics.vpin_cdf.labels(symbol=symbol).set(result.cdf)
        payload = {
            "vpin": result.latest_vpin,
            "cdf": result.cdf,
            "status": str(result.status),
            "bucket_volume": result.bucket_volume,
            "buckets": result.bucket_count,
            "window": result.window,
            "adv": state.adv,
            "adv_source": state.adv_source,
            "sigma": result.sigma,
            "open_bucket_volume": result.open_bucket_volume,
            "bars": result.bar_count,
            "history_bars": state.history_bars,
            "unclassified_volume": result.unclassified_volume,
            "recent_vpin": result.vpin[-60:],
        }
        values = {"vpin": result.latest_vpin, "cdf": result.cdf, "buckets": float(result.bucket_count)}
        provenance = Provenance(state.source, state.last_event, tuple(state.recent_ids), state.last_ingest)
        write, record = kernel_result(
            module=self.MODULE,
            key=result_key(self.MODULE, symbol),
            symbol=symbol,
            payload=payload,
            values=values,
            computed_at=now,
            valid_until=until,
            provenance=provenance,
            settings=self.settings(),
        )
        await self.emitter.emit(self.MODULE, symbol, [write], record)


@dataclass(frozen=True)
class _Book:
    bids: list[tuple[float, float]]  # (price, size), best first
    asks: list[tuple[float, float]]
    source: str
    event_time: datetime
    ingest_time: datetime
    origin: Source
    input_ids: tuple[str, ...]


def merge_depth(
    snapshots: Sequence[DepthSnapshot], levels: int
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """One consolidated book from venue books: sizes at equal prices add up, best ``levels`` per side."""
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    for snap in snapshots:
        for level in snap.bids:
            if level.size > 0.0:
                bids[level.price] = bids.get(level.price, 0.0) + level.size
        for level in snap.asks:
            if level.size > 0.0:
                asks[level.price] = asks.get(level.price, 0.0) + level.size
    best_bids = sorted(bids.items(), key=lambda kv: -kv[0])[:levels]
    best_asks = sorted(asks.items(), key=lambda kv: kv[0])[:levels]
    return best_bids, best_asks


def book_arrays(books: Sequence[_Book], levels: int) -> OrderBooks:
    """``(m, levels)`` price and size matrices (NaN price, 0 size where a level is missing), validated."""
    m = len(books)
    arrays = {name: np.full((m, levels), math.nan) for name in ("bp", "ap")}
    sizes = {name: np.zeros((m, levels)) for name in ("bs", "as")}
    for row, book in enumerate(books):
        for side_px, side_sz, side in (("bp", "bs", book.bids), ("ap", "as", book.asks)):
            for k, (price, size) in enumerate(side[:levels]):
                arrays[side_px][row, k] = price
                sizes[side_sz][row, k] = size
    return order_books(arrays["bp"], sizes["bs"], arrays["ap"], sizes["as"])


class LiquidityService:
    """Per-symbol liquidity from the freshest consolidated L2 book, else L1, published on a timer.

    Args:
        emitter: where results go.
        metrics: the analytics metrics.
        config: cadence, validity, order size.
        settings: run id and mode for the records.
        levels: book levels per side kept after merging venues.
        clock: now.
    """

    MODULE = "liquidity"

    def __init__(
        self,
        emitter: Emitter,
        metrics: AnalyticsMetrics,
        config: AnalyticsConfig,
        settings: Callable[[], Settings],
        levels: int = 20,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.emitter = emitter
        self.metrics = metrics
        self.config = config
        self.settings = settings
        self.levels = levels
        self.clock = clock
        self.depth: dict[str, dict[str, DepthSnapshot]] = {}
        self.quotes: dict[str, UnderlyingQuote] = {}
        self.params = LiquidityScoreParams()

    def on_depth(self, snapshot: DepthSnapshot) -> None:
        """The latest book of one venue."""
        venues = self.depth.setdefault(snapshot.symbol, {})
        current = venues.get(snapshot.venue)
        if current is None or snapshot.event_time >= current.event_time:
            venues[snapshot.venue] = snapshot

    def on_quote(self, quote: UnderlyingQuote) -> None:
        """The latest L1 quote (the fallback book)."""
        current = self.quotes.get(quote.symbol)
        if current is None or quote.event_time >= current.event_time:
            self.quotes[quote.symbol] = quote

    def book(self, symbol: str, oldest: datetime) -> _Book | None:
        """The freshest consolidated book of ``symbol`` (depth, else L1) not older than ``oldest``."""
        fresh = [s for s in self.depth.get(symbol, {}).values() if s.event_time >= oldest]
        if fresh:
            bids, asks = merge_depth(fresh, self.levels)
            newest = max(fresh, key=lambda s: s.event_time)
            venues = ",".join(sorted(s.venue for s in fresh))
            ids = tuple(s.record_id for s in fresh)[-_RECENT_IDS:]
            return _Book(bids, asks, f"depth:{venues}", newest.event_time, newest.ingest_time, newest.source, ids)
        quote = self.quotes.get(symbol)
        if quote is None or quote.event_time < oldest:
            return None
        bids = [(quote.bid, quote.bid_size or 0.0)] if quote.bid and quote.bid_size else []
        asks = [(quote.ask, quote.ask_size or 0.0)] if quote.ask and quote.ask_size else []
        return _Book(bids, asks, "l1", quote.event_time, quote.ingest_time, quote.source, (quote.record_id,))

    async def tick(self) -> None:
        """The 5 s cadence: every symbol with a fresh book, in one kernel call."""
        now = self.clock()
        oldest = now - timedelta(seconds=self.config.liquidity_validity_s)
        symbols = sorted(set(self.depth) | set(self.quotes))
        books = [(s, b) for s in symbols if (b := self.book(s, oldest)) is not None]
        if not books:
            return
        started = time.perf_counter()
        try:
            validated = book_arrays([b for _, b in books], self.levels)
            snap = liquidity_snapshot(validated, params=self.params)
            size = self.config.liquidity_order_size
            buy = walk_book(validated, size, True)
            sell = walk_book(validated, size, False)
        except AnalyticsInputError as exc:
            self.metrics.failures.labels(module=self.MODULE, reason="invalid_input").inc()
            log.warning("liquidity_books_rejected", error=str(exc), symbols=[s for s, _ in books])
            return
        self.metrics.compute_latency_ms.labels(module=self.MODULE).observe((time.perf_counter() - started) * 1000.0)
        for row, (symbol, book) in enumerate(books):
            await self._publish(symbol, book, row, snap, buy, sell, now)

    async def _publish(
        self,
        symbol: str,
        book: _Book,
        row: int,
        snap: LiquiditySnapshot,
        buy: SlippageEstimate,
        sell: SlippageEstimate,
        now: datetime,
    ) -> None:
        m = snap.metrics
        self.metrics.input_lag.labels(module=self.MODULE, horizon="intraday").set(
            max((now - book.event_time).total_seconds(), 0.0)
        )
        score = float(snap.score[row])
        if math.isfinite(score):
            self.metrics.liquidity_score.labels(symbol=symbol).set(score)
        spread_bps = float(m.spread_bps[row])
        if math.isfinite(spread_bps):
            self.metrics.spread_bps.labels(symbol=symbol).set(spread_bps)
        metric_names = (
            "best_bid", "best_ask", "mid", "spread", "spread_bps", "microprice", "imbalance_top",
            "imbalance_weighted", "bid_depth_top", "bid_depth_5", "bid_depth_10", "bid_notional_5", "bid_decay",
            "ask_depth_top", "ask_depth_5", "ask_depth_10", "ask_notional_5", "ask_decay",
        )  # fmt: skip
        numbers = {name: float(getattr(m, name)[row]) for name in metric_names}
        payload = {
            "status": BookStatus(int(m.status[row])).name.lower(),
            "book_source": book.source,
            "levels": {"bids": len(book.bids), "asks": len(book.asks)},
            **numbers,
            "score": score,
            "reference_notional": self.params.reference_notional,
            "reference_slippage_bps": {
                "buy": float(snap.buy.slippage_bps[row]),
                "sell": float(snap.sell.slippage_bps[row]),
            },
            "order_size": self.config.liquidity_order_size,
            "order_slippage_bps": {"buy": float(buy.slippage_bps[row]), "sell": float(sell.slippage_bps[row])},
            "order_insufficient_depth": {
                "buy": bool(buy.insufficient_depth[row]),
                "sell": bool(sell.insufficient_depth[row]),
            },
        }
        values = {
            "score": score,
            "spread_bps": spread_bps,
            "imbalance_top": numbers["imbalance_top"],
            "slippage_buy_bps": float(buy.slippage_bps[row]),
            "slippage_sell_bps": float(sell.slippage_bps[row]),
        }
        write, record = kernel_result(
            module=self.MODULE,
            key=result_key(self.MODULE, symbol),
            symbol=symbol,
            payload=payload,
            values=values,
            computed_at=now,
            valid_until=book.event_time + timedelta(seconds=self.config.liquidity_validity_s),
            provenance=Provenance(book.origin, book.event_time, book.input_ids, book.ingest_time),
            settings=self.settings(),
        )
        await self.emitter.emit(self.MODULE, symbol, [write], record)
