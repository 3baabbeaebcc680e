"""Time bars from trades (5 s OHLCV + VWAP + trade count), roll-ups, and realized volatility.

Bucket boundaries are epoch-aligned in UTC: a trade at ``t`` ns belongs to the bar that
starts at ``origin + floor((t - origin) / interval) * interval`` (``origin_ns = 0`` is
1970-01-01T00:00:00Z). US sessions open at 09:30 New York time, a whole number of
minutes after a UTC midnight that is itself a whole number of days from the epoch, so
with ``origin_ns = 0`` every 5 s, 1 m, 2 m and 5 m boundary also falls on the session
open: epoch alignment *is* session alignment for these intervals. Only intervals that
contain at least one trade produce a bar (no forward-filled empty bars).

One sequential numba kernel merges "records" into bars: a trade is a record whose open,
high, low and close are its price, and a bar is a record too, which is how roll-ups
(5 s -> 1 m -> 5 m) reuse the kernel. The batch function and the streaming
``BarAggregator`` both run that kernel, so they agree exactly. Formulas:
docs/module3_formulas.md, "Bars and realized volatility".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from quanticity.analytics._jit import kernel
from quanticity.analytics.inputs import AnalyticsInputError, Bound, prepare_inputs

__all__ = [
    "FIVE_MINUTES_NS",
    "FIVE_SECONDS_NS",
    "ONE_MINUTE_NS",
    "TRADING_SECONDS_PER_YEAR",
    "TWO_MINUTES_NS",
    "AggregatorUpdate",
    "Bar",
    "BarAggregator",
    "Bars",
    "aggregate_ticks",
    "log_returns",
    "realized_variance",
    "realized_volatility",
    "rolling_realized_volatility",
    "rollup",
]

NS_PER_SECOND = 1_000_000_000
FIVE_SECONDS_NS = 5 * NS_PER_SECOND
ONE_MINUTE_NS = 60 * NS_PER_SECOND
TWO_MINUTES_NS = 2 * ONE_MINUTE_NS
FIVE_MINUTES_NS = 5 * ONE_MINUTE_NS
# Annualisation convention: 252 sessions of 6.5 h (regular US hours); overnight excluded.
TRADING_SECONDS_PER_YEAR = 252 * 23_400

_POSITIVE = Bound(low=0.0)
_NO_WATERMARK = np.iinfo(np.int64).min

# Kernel state: integer slots and float slots of the open bar, plus late-tick counters.
_HAS_OPEN, _START, _FIRST_T, _LAST_T, _COUNT, _WATERMARK, _LATE = range(7)
_OPEN, _HIGH, _LOW, _CLOSE, _VOLUME, _NOTIONAL, _LATE_VOLUME = range(7)
_EMITTED = 6  # float columns of an emitted bar: open, high, low, close, volume, notional


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV bar covering ``[start_ns, start_ns + interval_ns)``.

    Attributes:
        start_ns: bar start, int ns since the epoch (UTC), aligned to the interval.
        interval_ns: bar length in ns.
        open: first trade price (earliest timestamp).
        high: highest trade price.
        low: lowest trade price.
        close: last trade price (latest timestamp).
        volume: summed trade size.
        vwap: volume-weighted average price, ``sum(price * size) / volume``.
        trade_count: number of trades.
    """

    start_ns: int
    interval_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    vwap: float
    trade_count: int

    @property
    def end_ns(self) -> int:
        """Exclusive end of the bar."""
        return self.start_ns + self.interval_ns


@dataclass(frozen=True, slots=True)
class Bars:
    """A series of bars of one interval, in time order, one array element per bar.

    Attributes:
        interval_ns: bar length in ns.
        start_ns: int64 bar starts (UTC ns, interval-aligned), strictly increasing.
        open: float64 first prices.
        high: float64 highest prices.
        low: float64 lowest prices.
        close: float64 last prices.
        volume: float64 summed sizes.
        vwap: float64 volume-weighted average prices.
        trade_count: int64 numbers of trades.
    """

    interval_ns: int
    start_ns: NDArray[np.int64]
    open: NDArray[np.float64]
    high: NDArray[np.float64]
    low: NDArray[np.float64]
    close: NDArray[np.float64]
    volume: NDArray[np.float64]
    vwap: NDArray[np.float64]
    trade_count: NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.start_ns.size)

    @property
    def end_ns(self) -> NDArray[np.int64]:
        """Exclusive bar ends."""
        return self.start_ns + np.int64(self.interval_ns)

    def bar(self, index: int) -> Bar:
        """The bar at ``index`` as a value object."""
        return Bar(
            start_ns=int(self.start_ns[index]),
            interval_ns=self.interval_ns,
            open=float(self.open[index]),
            high=float(self.high[index]),
            low=float(self.low[index]),
            close=float(self.close[index]),
            volume=float(self.volume[index]),
            vwap=float(self.vwap[index]),
            trade_count=int(self.trade_count[index]),
        )

    @classmethod
    def empty(cls, interval_ns: int) -> Bars:
        """No bars."""
        f = np.empty(0, dtype=np.float64)
        i = np.empty(0, dtype=np.int64)
        return cls(interval_ns, i, f, f, f, f, f, f, i)


@dataclass(frozen=True, slots=True)
class AggregatorUpdate:
    """What one ``BarAggregator.add`` call produced.

    Attributes:
        completed: bars closed by this call (a tick in a later interval closes the open bar).
        late_ticks: ticks of this call older than the open bar; counted, never merged.
        late_volume: their summed size.
    """

    completed: Bars
    late_ticks: int
    late_volume: float


@kernel()
def _merge_records(
    time: NDArray[np.int64],
    open_: NDArray[np.float64],
    high: NDArray[np.float64],
    low: NDArray[np.float64],
    close: NDArray[np.float64],
    volume: NDArray[np.float64],
    notional: NDArray[np.float64],
    count: NDArray[np.int64],
    interval: int,
    origin: int,
    ist: NDArray[np.int64],
    fst: NDArray[np.float64],
    out_start: NDArray[np.int64],
    out_count: NDArray[np.int64],
    out_f: NDArray[np.float64],
) -> int:
    # Records arrive in any order; the open bar takes its open from the earliest record
    # and its close from the latest (ties: first arrival opens, last arrival closes).
    n_out = 0
    for i in range(time.shape[0]):
        t = time[i]
        start = (t - origin) // interval * interval + origin
        if ist[_HAS_OPEN] == 1 and start != ist[_START]:
            if start < ist[_START]:
                ist[_LATE] += count[i]
                fst[_LATE_VOLUME] += volume[i]
                continue
            out_start[n_out] = ist[_START]
            out_count[n_out] = ist[_COUNT]
            for j in range(_EMITTED):
                out_f[n_out, j] = fst[j]
            n_out += 1
            ist[_HAS_OPEN] = 0
            ist[_WATERMARK] = ist[_START] + interval
        if ist[_HAS_OPEN] == 0:
            if start < ist[_WATERMARK]:
                ist[_LATE] += count[i]
                fst[_LATE_VOLUME] += volume[i]
                continue
            ist[_HAS_OPEN] = 1
            ist[_START] = start
            ist[_FIRST_T] = t
            ist[_LAST_T] = t
            ist[_COUNT] = count[i]
            fst[_OPEN] = open_[i]
            fst[_HIGH] = high[i]
            fst[_LOW] = low[i]
            fst[_CLOSE] = close[i]
            fst[_VOLUME] = volume[i]
            fst[_NOTIONAL] = notional[i]
            continue
        if t < ist[_FIRST_T]:
            ist[_FIRST_T] = t
            fst[_OPEN] = open_[i]
        if t >= ist[_LAST_T]:
            ist[_LAST_T] = t
            fst[_CLOSE] = close[i]
        fst[_HIGH] = max(fst[_HIGH], high[i])
        fst[_LOW] = min(fst[_LOW], low[i])
        fst[_VOLUME] += volume[i]
        fst[_NOTIONAL] += notional[i]
        ist[_COUNT] += count[i]
    return n_out


def _times(name: str, value: ArrayLike) -> NDArray[np.int64]:
    arr = np.atleast_1d(np.asarray(value))
    if arr.ndim != 1:
        raise AnalyticsInputError(name, f"must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        raise AnalyticsInputError(name, "exceeds the int64 nanosecond range")
    if arr.dtype.kind not in "iu":
        raise AnalyticsInputError(name, f"must be integer nanoseconds since the epoch (int64), got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _check_interval(name: str, interval_ns: int) -> int:
    if isinstance(interval_ns, bool) or not isinstance(interval_ns, int | np.integer) or int(interval_ns) <= 0:
        raise AnalyticsInputError(name, f"must be a positive integer number of nanoseconds, got {interval_ns!r}")
    return int(interval_ns)


def _trade_columns(
    time_ns: ArrayLike, price: ArrayLike, size: ArrayLike
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    times = _times("time_ns", time_ns)
    for name, value in (("price", price), ("size", size)):
        if np.size(value) != times.size:
            raise AnalyticsInputError(
                name, f"has {np.size(value)} elements but time_ns has {times.size}; one per trade"
            )
    prepared = prepare_inputs({"price": (price, _POSITIVE), "size": (size, _POSITIVE)}, {})
    return times, prepared.floats["price"], prepared.floats["size"]


class _BarState:
    """Open-bar state shared by the batch functions and ``BarAggregator``."""

    __slots__ = ("fst", "interval", "ist", "origin")

    def __init__(self, interval_ns: int, origin_ns: int) -> None:
        self.interval = interval_ns
        self.origin = origin_ns
        self.ist = np.zeros(7, dtype=np.int64)
        self.ist[_WATERMARK] = _NO_WATERMARK
        self.fst = np.zeros(7, dtype=np.float64)

    def feed(
        self,
        time: NDArray[np.int64],
        open_: NDArray[np.float64],
        high: NDArray[np.float64],
        low: NDArray[np.float64],
        close: NDArray[np.float64],
        volume: NDArray[np.float64],
        notional: NDArray[np.float64],
        count: NDArray[np.int64],
    ) -> Bars:
        n = time.size
        out_start = np.empty(n, dtype=np.int64)
        out_count = np.empty(n, dtype=np.int64)
        out_f = np.empty((n, _EMITTED), dtype=np.float64)
        if n:
            k = _merge_records(
                time,
                open_,
                high,
                low,
                close,
                volume,
                notional,
                count,
                self.interval,
                self.origin,
                self.ist,
                self.fst,
                out_start,
                out_count,
                out_f,
            )
        else:
            k = 0
        return _bars_from(self.interval, out_start[:k], out_count[:k], out_f[:k])

    def close_open(self) -> Bars:
        if self.ist[_HAS_OPEN] == 0:
            return Bars.empty(self.interval)
        start = self.ist[_START : _START + 1].copy()
        count = self.ist[_COUNT : _COUNT + 1].copy()
        values = self.fst[None, :_EMITTED].copy()
        self.ist[_HAS_OPEN] = 0
        self.ist[_WATERMARK] = self.ist[_START] + self.interval
        return _bars_from(self.interval, start, count, values)


def _bars_from(interval: int, start: NDArray[np.int64], count: NDArray[np.int64], values: NDArray[np.float64]) -> Bars:
    volume = np.ascontiguousarray(values[:, 4])
    return Bars(
        interval_ns=interval,
        start_ns=start,
        open=np.ascontiguousarray(values[:, 0]),
        high=np.ascontiguousarray(values[:, 1]),
        low=np.ascontiguousarray(values[:, 2]),
        close=np.ascontiguousarray(values[:, 3]),
        volume=volume,
        vwap=values[:, 5] / volume,
        trade_count=count,
    )


def aggregate_ticks(
    time_ns: ArrayLike,
    price: ArrayLike,
    size: ArrayLike,
    *,
    interval_ns: int = FIVE_SECONDS_NS,
    origin_ns: int = 0,
) -> Bars:
    """OHLCV bars (with VWAP and trade count) from a day or more of trades.

    Args:
        time_ns: trade times, int64 ns since the epoch (UTC), non-decreasing.
        price: trade prices, finite and > 0.
        size: trade sizes, finite and > 0.
        interval_ns: bar length (default 5 s).
        origin_ns: alignment origin of the bar boundaries (default the epoch).

    Returns:
        one bar per interval that contains at least one trade, in time order.

    Raises:
        AnalyticsInputError: non-integer or decreasing times, a non-positive or
            non-finite price or size, mismatched lengths, or a non-positive interval.
    """
    interval = _check_interval("interval_ns", interval_ns)
    times, px, sz = _trade_columns(time_ns, price, size)
    if times.size > 1:
        back = np.flatnonzero(times[1:] < times[:-1])
        if back.size:
            i = int(back[0]) + 1
            raise AnalyticsInputError("time_ns", "must be non-decreasing (sort trades by time)", index=i)
    state = _BarState(interval, int(origin_ns))
    ones = np.ones(times.size, dtype=np.int64)
    head = state.feed(times, px, px, px, px, sz, px * sz, ones)
    return _concat(interval, head, state.close_open())


def rollup(bars: Bars, interval_ns: int, *, origin_ns: int = 0) -> Bars:
    """Bars of a longer interval from shorter ones (5 s -> 1 m / 2 m / 5 m, 1 m -> 5 m...).

    The result equals ``aggregate_ticks`` run directly at ``interval_ns`` on the same
    trades: open/high/low/close and trade counts exactly, volume and VWAP up to the
    order of floating-point summation.

    Args:
        bars: source bars, aligned to ``origin_ns``, strictly increasing starts.
        interval_ns: target length, a positive multiple of ``bars.interval_ns``.
        origin_ns: alignment origin, the one the source bars were built with.

    Returns:
        the rolled-up bars.

    Raises:
        AnalyticsInputError: the target interval is not a multiple of the source one,
            or the source bars are unaligned or out of order.
    """
    interval = _check_interval("interval_ns", interval_ns)
    if interval % bars.interval_ns:
        raise AnalyticsInputError(
            "interval_ns", f"{interval} is not a multiple of the source bars' interval {bars.interval_ns}"
        )
    starts = np.ascontiguousarray(bars.start_ns, dtype=np.int64)
    misaligned = np.flatnonzero((starts - np.int64(origin_ns)) % np.int64(bars.interval_ns))
    if misaligned.size:
        raise AnalyticsInputError("bars", "bar starts are not aligned to origin_ns", index=int(misaligned[0]))
    if starts.size > 1:
        back = np.flatnonzero(starts[1:] <= starts[:-1])
        if back.size:
            raise AnalyticsInputError("bars", "bar starts must be strictly increasing", index=int(back[0]) + 1)
    state = _BarState(interval, int(origin_ns))
    head = state.feed(
        starts,
        np.ascontiguousarray(bars.open, dtype=np.float64),
        np.ascontiguousarray(bars.high, dtype=np.float64),
        np.ascontiguousarray(bars.low, dtype=np.float64),
        np.ascontiguousarray(bars.close, dtype=np.float64),
        np.ascontiguousarray(bars.volume, dtype=np.float64),
        np.ascontiguousarray(bars.vwap * bars.volume, dtype=np.float64),
        np.ascontiguousarray(bars.trade_count, dtype=np.int64),
    )
    return _concat(interval, head, state.close_open())


_ARRAY_FIELDS = ("start_ns", "open", "high", "low", "close", "volume", "vwap", "trade_count")


def _concat(interval: int, a: Bars, b: Bars) -> Bars:
    if not len(b):
        return a
    if not len(a):
        return b
    return Bars(
        interval,
        *(np.concatenate([getattr(a, f), getattr(b, f)]) for f in _ARRAY_FIELDS),
    )


class BarAggregator:
    """Streaming bar builder: feed trades as they arrive, receive bars as they complete.

    A trade in the open bar's interval is merged even if it arrives out of order (the
    open and close follow timestamps, not arrival). A trade older than the open bar (or,
    with no bar open, older than the end of the last completed bar) is *late*: it is
    counted in ``late_ticks`` / ``late_volume`` and reported in the update, never merged
    into a bar that was already emitted. Fed the same time-sorted trades and then
    flushed, it produces exactly the bars of ``aggregate_ticks``.

    Args:
        interval_ns: bar length (default 5 s).
        origin_ns: alignment origin of the bar boundaries (default the epoch).

    Raises:
        AnalyticsInputError: a non-positive interval.
    """

    def __init__(self, interval_ns: int = FIVE_SECONDS_NS, *, origin_ns: int = 0) -> None:
        self._state = _BarState(_check_interval("interval_ns", interval_ns), int(origin_ns))

    @property
    def interval_ns(self) -> int:
        """Bar length in ns."""
        return self._state.interval

    @property
    def late_ticks(self) -> int:
        """Late trades rejected since construction."""
        return int(self._state.ist[_LATE])

    @property
    def late_volume(self) -> float:
        """Summed size of the late trades."""
        return float(self._state.fst[_LATE_VOLUME])

    @property
    def open_bar(self) -> Bar | None:
        """The bar being built (not yet complete), or None."""
        st = self._state
        if st.ist[_HAS_OPEN] == 0:
            return None
        f = st.fst
        return Bar(
            start_ns=int(st.ist[_START]),
            interval_ns=st.interval,
            open=float(f[_OPEN]),
            high=float(f[_HIGH]),
            low=float(f[_LOW]),
            close=float(f[_CLOSE]),
            volume=float(f[_VOLUME]),
            vwap=float(f[_NOTIONAL] / f[_VOLUME]),
            trade_count=int(st.ist[_COUNT]),
        )

    def add(self, time_ns: ArrayLike, price: ArrayLike, size: ArrayLike) -> AggregatorUpdate:
        """Feed one trade (scalars) or several (arrays, in arrival order).

        Args:
            time_ns: trade times, int64 ns since the epoch (UTC); any order.
            price: trade prices, finite and > 0.
            size: trade sizes, finite and > 0.

        Returns:
            the bars completed by these trades and the late trades among them.

        Raises:
            AnalyticsInputError: malformed trades (nothing is fed then).
        """
        times, px, sz = _trade_columns(time_ns, price, size)
        st = self._state
        late_before, late_volume_before = int(st.ist[_LATE]), float(st.fst[_LATE_VOLUME])
        ones = np.ones(times.size, dtype=np.int64)
        completed = st.feed(times, px, px, px, px, sz, px * sz, ones)
        return AggregatorUpdate(
            completed=completed,
            late_ticks=int(st.ist[_LATE]) - late_before,
            late_volume=float(st.fst[_LATE_VOLUME]) - late_volume_before,
        )

    def close_until(self, now_ns: int) -> Bars:
        """Complete the open bar if its interval has ended by ``now_ns`` (a clock tick).

        Without it a bar would wait for the next trade; a timer calls this so quiet
        symbols still publish their last bar on time.

        Args:
            now_ns: current time, int ns since the epoch (UTC).

        Returns:
            the completed bar (zero or one).
        """
        st = self._state
        if st.ist[_HAS_OPEN] == 1 and int(now_ns) >= int(st.ist[_START]) + st.interval:
            return st.close_open()
        return Bars.empty(st.interval)

    def flush(self) -> Bars:
        """Complete the open bar now (end of session); later trades in its interval are late."""
        return self._state.close_open()


# ------------------------------------------------------------------ realized volatility
def log_returns(close: ArrayLike) -> NDArray[np.float64]:
    """Log returns ``ln(c_i / c_{i-1})`` of consecutive closes.

    Args:
        close: bar closes (or any price series), finite and > 0, one-dimensional.

    Returns:
        ``len(close) - 1`` returns.

    Raises:
        AnalyticsInputError: a non-positive or non-finite price, or not one-dimensional.
    """
    prepared = prepare_inputs({"close": (close, _POSITIVE)}, {})
    if len(prepared.shape) != 1:
        raise AnalyticsInputError("close", f"must be one-dimensional, got shape {prepared.shape}")
    c = prepared.floats["close"]
    return np.log(c[1:] / c[:-1])


def realized_variance(close: ArrayLike) -> float:
    """Realized variance: the sum of squared log returns over the series.

    Args:
        close: bar closes, finite and > 0, at least two.

    Returns:
        ``sum_i ln(c_i / c_{i-1})**2`` (not annualised).

    Raises:
        AnalyticsInputError: fewer than two prices, or a bad price.
    """
    r = log_returns(close)
    if r.size == 0:
        raise AnalyticsInputError("close", "needs at least two prices for one return")
    return float(np.dot(r, r))


def _annualisation(interval_ns: int, trading_seconds_per_year: float) -> float:
    interval = _check_interval("interval_ns", interval_ns)
    if not (math.isfinite(trading_seconds_per_year) and trading_seconds_per_year > 0):
        raise AnalyticsInputError(
            "trading_seconds_per_year", f"must be finite and > 0, got {trading_seconds_per_year!r}"
        )
    return trading_seconds_per_year / (interval / NS_PER_SECOND)  # bars per trading year


def realized_volatility(
    close: ArrayLike,
    interval_ns: int,
    *,
    annualize: bool = True,
    trading_seconds_per_year: float = TRADING_SECONDS_PER_YEAR,
) -> float:
    """Realized volatility of a bar series.

    ``sqrt(RV / N * bars_per_year)`` with ``RV`` the sum of ``N`` squared log returns and
    ``bars_per_year = trading_seconds_per_year / interval``: the mean squared return per
    bar scaled to a trading year (252 x 6.5 h by default, overnight excluded). With
    ``annualize=False`` it is ``sqrt(RV)``, the volatility over the window itself.

    Args:
        close: bar closes, finite and > 0, at least two.
        interval_ns: bar length in ns (each return counts as one bar of trading time).
        annualize: scale to a year (default) or not.
        trading_seconds_per_year: trading time in a year, seconds.

    Returns:
        the volatility (per sqrt(year) when annualised).

    Raises:
        AnalyticsInputError: fewer than two prices, a bad price or a bad interval.
    """
    scale = _annualisation(interval_ns, trading_seconds_per_year)
    r = log_returns(close)
    if r.size == 0:
        raise AnalyticsInputError("close", "needs at least two prices for one return")
    rv = float(np.dot(r, r))
    return math.sqrt(rv / r.size * scale) if annualize else math.sqrt(rv)


def rolling_realized_volatility(
    close: ArrayLike,
    window: int,
    interval_ns: int,
    *,
    trading_seconds_per_year: float = TRADING_SECONDS_PER_YEAR,
) -> NDArray[np.float64]:
    """Annualised realized volatility over each trailing window of ``window`` returns.

    Element ``j`` covers returns ``j .. j + window - 1`` (i.e. closes ``j .. j + window``),
    with the convention of ``realized_volatility``.

    Args:
        close: bar closes, finite and > 0.
        window: number of returns per window, >= 1.
        interval_ns: bar length in ns.
        trading_seconds_per_year: trading time in a year, seconds.

    Returns:
        ``max(0, len(close) - window)`` volatilities.

    Raises:
        AnalyticsInputError: a bad price, window or interval.
    """
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 1:
        raise AnalyticsInputError("window", f"must be an integer >= 1, got {window!r}")
    scale = _annualisation(interval_ns, trading_seconds_per_year)
    r = log_returns(close)
    if r.size < window:
        return np.empty(0, dtype=np.float64)
    # Direct window sums (a cumulative-sum difference would lose digits on long series).
    sq = np.lib.stride_tricks.sliding_window_view(r * r, int(window)).sum(axis=1)
    return np.asarray(np.sqrt(sq / window * scale), dtype=np.float64)
