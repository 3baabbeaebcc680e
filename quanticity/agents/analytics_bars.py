"""Bars the timer-driven kernels read: 5 s and 1 m bars from trades, session VWAP and volume.

Trades on ``ticks`` are aggregated by ``quanticity.analytics.bars.BarAggregator`` into 5-second
and 1-minute bars; symbols without a trade feed use the 1-minute ``Bar`` records on ``ticks``
(AlphaVantage intraday, IBKR bars), never both for one symbol. On first sight of a symbol the
stored 1-minute history (``bars:{symbol}:60s:close|volume``, written by the store role, seven
days) is loaded, so the regime and risk windows do not start empty after a restart. Rolled-up
5 m / 60 m closes come from the 1-minute bars (the close of the last minute in each interval).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
import structlog
from numpy.typing import NDArray
from redis.asyncio import Redis
from redis.exceptions import RedisError

from quanticity.agents.analytics_greeks import ET
from quanticity.analytics.bars import FIVE_SECONDS_NS, ONE_MINUTE_NS, BarAggregator, Bars
from quanticity.observability.analytics_metrics import AnalyticsMetrics
from quanticity.schemas import Bar, Source, Tick

log = structlog.get_logger(__name__)

_FIVE_SECOND_BARS = 720  # one hour
_RECENT_IDS = 3


def _ns(t: datetime) -> int:
    return int(t.timestamp() * 1e9)


def _et_date(start_ns: int) -> date:
    return datetime.fromtimestamp(start_ns / 1e9, tz=ET).date()


async def stored_minute_bars(
    redis: Redis, key_prefix: str, symbol: str, since_ms: int
) -> list[tuple[int, float, float]]:
    """The stored 1-minute bars of ``symbol`` from ``since_ms`` on as ``(start ms, close, volume)``, oldest first.

    ``bars:{symbol}:60s:close|volume`` (written by the store role, seven days); a minute with
    a close and no volume counts as no volume; no stored series gives no bars.

    Raises:
        RedisError: Redis failed (not a missing series).
    """
    closes = await _stored_range(redis, f"{key_prefix}bars:{symbol}:60s:close", since_ms)
    volumes = dict(await _stored_range(redis, f"{key_prefix}bars:{symbol}:60s:volume", since_ms))
    return [(ts, close, volumes.get(ts, 0.0)) for ts, close in closes]


async def _stored_range(redis: Redis, key: str, since_ms: int) -> list[tuple[int, float]]:
    try:
        reply = await redis.execute_command("TS.RANGE", key, since_ms, "+")  # type: ignore[no-untyped-call]
    except RedisError as exc:
        if "does not exist" in str(exc).lower():
            return []
        raise
    return [(int(ts), float(v)) for ts, v in reply]


@dataclass
class SymbolBars:
    """One symbol's bars and session totals."""

    history: int
    agg_5s: BarAggregator = field(default_factory=lambda: BarAggregator(FIVE_SECONDS_NS))
    agg_1m: BarAggregator = field(default_factory=lambda: BarAggregator(ONE_MINUTE_NS))
    close_5s: deque[float] = field(default_factory=lambda: deque(maxlen=_FIVE_SECOND_BARS))
    start_1m: deque[int] = field(init=False)
    close_1m: deque[float] = field(init=False)
    volume_1m: deque[float] = field(init=False)
    trades: bool = False
    session: date | None = None
    session_open: float | None = None
    session_volume: float = 0.0
    session_notional: float = 0.0
    last_price: float | None = None
    last_event: datetime | None = None
    last_ingest: datetime | None = None
    source: Source = "platform"
    recent_ids: deque[str] = field(default_factory=lambda: deque(maxlen=_RECENT_IDS))
    bootstrapped: bool = False

    def __post_init__(self) -> None:
        self.start_1m = deque(maxlen=self.history)
        self.close_1m = deque(maxlen=self.history)
        self.volume_1m = deque(maxlen=self.history)

    def add_minutes(self, start_ns: Sequence[int], close: Sequence[float], volume: Sequence[float]) -> None:
        """Append completed 1-minute bars (older than the newest held are dropped)."""
        for s, c, v in zip(start_ns, close, volume, strict=True):
            if self.start_1m and s <= self.start_1m[-1]:
                continue
            self.start_1m.append(int(s))
            self.close_1m.append(float(c))
            self.volume_1m.append(float(v))

    def note_session(self, start_ns: int, price: float, volume: float, notional: float) -> None:
        """Session (ET date) totals: first price, volume, notional for the VWAP."""
        day = _et_date(start_ns)
        if day != self.session:
            self.session, self.session_open, self.session_volume, self.session_notional = day, price, 0.0, 0.0
        self.session_volume += volume
        self.session_notional += notional

    @property
    def session_vwap(self) -> float | None:
        """Volume-weighted average price of today's session so far."""
        return self.session_notional / self.session_volume if self.session_volume > 0.0 else None


class BarBook:
    """Bars of every symbol seen on ``ticks``.

    Args:
        metrics: the analytics metrics (late ticks and history failures are counted).
        history_bars: 1-minute bars kept per symbol.
        redis: the hot store, for the stored 1-minute history; None = no history.
        key_prefix: the deployment's Redis key prefix.
    """

    def __init__(
        self,
        metrics: AnalyticsMetrics,
        history_bars: int,
        redis: Callable[[], Redis] | None = None,
        key_prefix: str = "",
    ) -> None:
        self.metrics = metrics
        self.history_bars = history_bars
        self.redis = redis
        self.key_prefix = key_prefix
        self.symbols: dict[str, SymbolBars] = {}

    def get(self, symbol: str) -> SymbolBars | None:
        """The symbol's bars, if it was seen."""
        return self.symbols.get(symbol)

    def _state(self, symbol: str) -> SymbolBars:
        return self.symbols.setdefault(symbol, SymbolBars(self.history_bars))

    def on_tick(self, tick: Tick) -> None:
        """A trade: into the 5 s and 1 m bars and the session totals."""
        if tick.kind != "trade" or not tick.price or not tick.size:
            return
        state = self._state(tick.symbol)
        state.trades = True
        t = _ns(tick.event_time)
        fives = state.agg_5s.add(t, tick.price, tick.size)
        minutes = state.agg_1m.add(t, tick.price, tick.size)
        if minutes.late_ticks:
            self.metrics.failures.labels(module="bars", reason="late_tick").inc(minutes.late_ticks)
        else:
            state.note_session(t, tick.price, tick.size, tick.price * tick.size)
        self._completed(state, fives.completed, minutes.completed)
        state.last_price = tick.price
        self._note(state, tick.event_time, tick)

    def on_bar(self, bar: Bar) -> None:
        """A 1-minute bar record, for symbols without trades."""
        if bar.interval_s != 60:
            return
        state = self._state(bar.symbol)
        if state.trades:
            return
        start = _ns(bar.event_time)
        if state.start_1m and start <= state.start_1m[-1]:
            return
        state.add_minutes([start], [bar.close], [bar.volume])
        state.note_session(start, bar.open, bar.volume, bar.close * bar.volume)
        state.last_price = bar.close
        self._note(state, bar.event_time + timedelta(seconds=60), bar)

    def _note(self, state: SymbolBars, event_time: datetime, record: Tick | Bar) -> None:
        state.last_event = event_time if state.last_event is None else max(state.last_event, event_time)
        state.last_ingest = record.ingest_time
        state.source = record.source
        state.recent_ids.append(record.record_id)

    @staticmethod
    def _completed(state: SymbolBars, fives: Bars, minutes: Bars) -> None:
        state.close_5s.extend(fives.close.tolist())
        if len(minutes):
            state.add_minutes(minutes.start_ns.tolist(), minutes.close.tolist(), minutes.volume.tolist())

    def close_until(self, now: datetime) -> None:
        """Complete every bar whose interval has ended (quiet symbols publish on time)."""
        t = _ns(now)
        for state in self.symbols.values():
            self._completed(state, state.agg_5s.close_until(t), state.agg_1m.close_until(t))

    async def bootstrap(self, symbols: Sequence[str], now: datetime) -> None:
        """Load the stored 1-minute history of symbols not loaded yet (once per symbol)."""
        if self.redis is None:
            return
        since = int((now - timedelta(days=7)).timestamp() * 1000)
        for symbol in symbols:
            state = self._state(symbol)
            if state.bootstrapped:
                continue
            state.bootstrapped = True
            try:
                stored = await stored_minute_bars(self.redis(), self.key_prefix, symbol, since)
            except RedisError as exc:
                state.bootstrapped = False  # try again on the next timer
                self.metrics.failures.labels(module="bars", reason="redis").inc()
                log.warning("bar_history_unavailable", symbol=symbol, error=str(exc))
                continue
            held = state.start_1m[0] if state.start_1m else math.inf
            older = [bar for bar in stored if bar[0] * 1_000_000 < held]
            if not older:
                continue
            merged = sorted(
                zip(
                    [ts * 1_000_000 for ts, _, _ in older] + list(state.start_1m),
                    [c for _, c, _ in older] + list(state.close_1m),
                    [v for _, _, v in older] + list(state.volume_1m),
                    strict=True,
                )
            )[-self.history_bars :]
            state.start_1m.clear()
            state.close_1m.clear()
            state.volume_1m.clear()
            state.add_minutes([m[0] for m in merged], [m[1] for m in merged], [m[2] for m in merged])
            log.info("bar_history_loaded", symbol=symbol, bars=len(older))

    def rolled_closes(self, symbol: str, minutes: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Closes of ``minutes``-minute bars rolled from the 1-minute bars: ``(interval index, close)``."""
        state = self.symbols.get(symbol)
        if state is None or not state.start_1m:
            return np.empty(0, dtype=np.int64), np.empty(0)
        starts = np.fromiter(state.start_1m, dtype=np.int64, count=len(state.start_1m))
        closes = np.fromiter(state.close_1m, dtype=np.float64, count=len(state.close_1m))
        bucket = starts // (minutes * ONE_MINUTE_NS)
        last = np.flatnonzero(np.r_[bucket[1:] != bucket[:-1], True])  # the last minute of each bucket
        return bucket[last], closes[last]

    def aligned_returns(self, symbols: Sequence[str], minutes: int, max_rows: int) -> NDArray[np.float64]:
        """Log returns of ``minutes``-minute closes on the intervals every symbol has, ``(T, N)``."""
        series = [self.rolled_closes(s, minutes) for s in symbols]
        if not series or any(idx.size == 0 for idx, _ in series):
            return np.empty((0, len(symbols)))
        common = series[0][0]
        for idx, _ in series[1:]:
            common = np.intersect1d(common, idx)
        columns = [close[np.searchsorted(idx, common)] for idx, close in series]
        matrix = np.column_stack(columns) if columns else np.empty((0, 0))
        if matrix.shape[0] < 2:
            return np.empty((0, len(symbols)))
        return np.diff(np.log(matrix), axis=0)[-max_rows:]

    def minute_returns(self, symbol: str, count: int, max_gap_minutes: int = 5) -> NDArray[np.float64]:
        """The last ``count`` log returns of 1-minute closes, without returns across gaps (overnight, halts)."""
        state = self.symbols.get(symbol)
        if state is None or len(state.close_1m) < 2:
            return np.empty(0)
        closes = np.fromiter(state.close_1m, dtype=np.float64, count=len(state.close_1m))
        starts = np.fromiter(state.start_1m, dtype=np.int64, count=len(state.start_1m))
        contiguous = np.diff(starts) <= max_gap_minutes * ONE_MINUTE_NS
        return np.diff(np.log(closes))[contiguous][-count:]

    def five_second_returns(self, symbol: str) -> NDArray[np.float64]:
        """Log returns of the last hour of 5-second closes."""
        state = self.symbols.get(symbol)
        if state is None or len(state.close_5s) < 2:
            return np.empty(0)
        return np.diff(np.log(np.fromiter(state.close_5s, dtype=np.float64, count=len(state.close_5s))))
