"""Underlying price paths: daily GBM with a mean-reverting volatility factor, 1 s inside the day.

Two levels keep any window cheap to reach without storing years of 1-second data:

* **Daily level**, generated once for the whole horizon (a few thousand numbers per
  symbol): a market log-volatility factor ``h`` (AR(1), shocks negatively correlated
  with market returns, so volatility rises after down days), each symbol's daily return
  (correlated with the market), and the log price at the end of every trading day.
* **Intraday level**, generated on demand per ``(symbol, day)`` from a sub-generator
  seeded by ``(seed, symbol, day)``: a Brownian bridge at 1-second resolution over the
  04:00-20:00 ET session pinned to the two daily end points, with a U-shaped intraday
  variance profile. Any day can be generated alone, in any order, with the same result.

Prices between 20:00 and 04:00 and on non-trading days hold at the last close.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from quanticity.simulation.cache import LRUCache
from quanticity.simulation.calendar import REGULAR_CLOSE_S, REGULAR_OPEN_S, SESSION_SECONDS, TradingCalendar
from quanticity.simulation.instruments import instrument_spec, stable_key

__all__ = ["DailyBar", "MinuteBars", "PathModel"]

_DAY_YEARS = 1.0 / 252.0  # one trading day of variance
_VOL_PERSISTENCE = 0.97  # AR(1) coefficient of the daily log-vol factor (half-life ~23 days)
_VOL_OF_VOL = 0.30  # stationary standard deviation of the log-vol factor
_LEVERAGE = -0.6  # correlation of vol-factor shocks with market returns
_DRIFT = 0.06  # annual drift of every path
_MINUTES = SESSION_SECONDS // 60
_DAY_OFFSET = 1 << 20  # keeps seed words non-negative for negative day indices


def _variance_profile() -> NDArray[np.float64]:
    """Share of the day's variance carried by each second of the 04:00-20:00 session."""
    s = np.arange(SESSION_SECONDS, dtype=np.float64)
    u = s - REGULAR_OPEN_S
    regular = (
        1.0 + 2.0 * np.exp(-np.maximum(u, 0) / 1800.0) + 1.0 * np.exp(-np.maximum(REGULAR_CLOSE_S - s, 0) / 1800.0)
    )
    w = np.where(s < REGULAR_OPEN_S, 0.25, np.where(s < REGULAR_CLOSE_S, regular, 0.12))
    return np.asarray(w / w.sum(), dtype=np.float64)


def _volume_profile() -> NDArray[np.float64]:
    """Share of the day's volume traded in each minute of the session (U-shaped)."""
    m = np.arange(_MINUTES, dtype=np.float64)
    open_m, close_m = REGULAR_OPEN_S // 60, REGULAR_CLOSE_S // 60
    u = m - open_m
    regular = 1.0 + 3.0 * np.exp(-np.maximum(u, 0) / 20.0) + 2.0 * np.exp(-np.maximum(close_m - 1 - m, 0) / 15.0)
    w = np.where(m < open_m, 0.05, np.where(m < close_m, regular, 0.04))
    return np.asarray(w / w.sum(), dtype=np.float64)


_VAR_PROFILE = _variance_profile()
_SQRT_VAR_PROFILE = np.sqrt(_VAR_PROFILE)
_CUM_VAR = np.concatenate(([0.0], np.cumsum(_VAR_PROFILE)))
_CUM_VAR[-1] = 1.0
_VOLUME_PROFILE = _volume_profile()


@dataclass(frozen=True, slots=True)
class MinuteBars:
    """OHLCV of every minute of one session (960 rows, 04:00 first)."""

    open: NDArray[np.float64]
    high: NDArray[np.float64]
    low: NDArray[np.float64]
    close: NDArray[np.float64]
    volume: NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class DailyBar:
    """One day's regular-session OHLC and the whole session's volume."""

    open: float
    high: float
    low: float
    close: float
    volume: int


@dataclass(frozen=True, slots=True)
class _DailyState:
    log_close: NDArray[np.float64]  # n+1 values: [k] is the log price at the start of day k
    vol: NDArray[np.float64]  # annualised vol of day k
    volume_level: NDArray[np.float64]  # shares expected on day k


class PathModel:
    """Deterministic price paths for every symbol over a calendar horizon.

    Args:
        seed: master seed; every random draw derives from it.
        calendar: the trading days of the horizon.
        anchor_index: the trading day at whose 04:00 every symbol trades at its start price.
    """

    def __init__(self, seed: int, calendar: TradingCalendar, anchor_index: int) -> None:
        self.seed = seed
        self.calendar = calendar
        self.anchor_index = anchor_index
        self._lock = threading.Lock()
        self._market_shocks, self._market_logvol = self._market_factor()
        self._daily: dict[str, _DailyState] = {}
        self._paths: LRUCache[tuple[str, int], NDArray[np.float64]] = LRUCache(48)
        self._market_noise: LRUCache[int, NDArray[np.float64]] = LRUCache(8)
        self._minutes: LRUCache[tuple[str, int], MinuteBars] = LRUCache(2048)
        self._summaries: dict[tuple[str, int], DailyBar] = {}

    def _rng(self, *words: int | str) -> np.random.Generator:
        seed = self.seed % (1 << 64)  # SeedSequence takes non-negative words
        entropy = [seed & 0xFFFFFFFF, seed >> 32]
        entropy += [stable_key(w) & 0xFFFFFFFF if isinstance(w, str) else w for w in words]
        return np.random.default_rng(np.random.SeedSequence(entropy))

    def _market_factor(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        n = len(self.calendar)
        rng = self._rng("market-factor")
        shocks = rng.standard_normal(n)
        xi = rng.standard_normal(n)
        h = np.empty(n)
        h_prev = 0.0
        innovation = math.sqrt(1.0 - _VOL_PERSISTENCE**2) * _VOL_OF_VOL
        lev = math.sqrt(1.0 - _LEVERAGE**2)
        for k in range(n):  # sequential by nature (AR(1)); a few thousand steps once per market
            h[k] = h_prev
            h_prev = _VOL_PERSISTENCE * h_prev + innovation * (_LEVERAGE * shocks[k] + lev * xi[k])
        return shocks, h

    def market_vol_factor(self, k: int) -> float:
        """The multiplicative volatility state of day ``k`` (1.0 on average)."""
        return float(np.exp(self._market_logvol[k] - 0.5 * _VOL_OF_VOL**2))

    def _state(self, symbol: str) -> _DailyState:
        with self._lock:
            state = self._daily.get(symbol)
            if state is not None:
                return state
        spec = instrument_spec(symbol)
        n = len(self.calendar)
        factor = np.exp(self._market_logvol - 0.5 * _VOL_OF_VOL**2)
        vol = spec.vol * factor
        if symbol == "SPY":
            eps = self._market_shocks
        else:
            own = self._rng("daily", symbol).standard_normal(n)
            c = spec.market_corr
            eps = c * self._market_shocks + math.sqrt(1.0 - c * c) * own
        ret = (_DRIFT - 0.5 * vol**2) * _DAY_YEARS + vol * math.sqrt(_DAY_YEARS) * eps
        log_close = np.concatenate(([0.0], np.cumsum(ret)))
        log_close += math.log(spec.start_price) - log_close[self.anchor_index]
        noise = self._rng("volume-level", symbol).standard_normal(n)
        volume_level = spec.avg_volume * np.exp(0.25 * noise + 0.8 * (factor - 1.0))
        state = _DailyState(log_close, vol, volume_level)
        with self._lock:
            self._daily[symbol] = state
        return state

    def close_before(self, symbol: str, k: int) -> float:
        """The price at 04:00 of day ``k``: the previous day's 20:00 close."""
        return float(np.exp(self._state(symbol).log_close[k]))

    def day_vol(self, symbol: str, k: int) -> float:
        """Annualised volatility of ``symbol`` on day ``k``."""
        return float(self._state(symbol).vol[k])

    def _noise(self, k: int) -> NDArray[np.float64]:
        return self._market_noise.get(
            k, lambda: self._rng("intraday", "SPY", k + _DAY_OFFSET).standard_normal(SESSION_SECONDS)
        )

    def day_path(self, symbol: str, k: int) -> NDArray[np.float64]:
        """Prices at each second 0..57,600 of day ``k``'s session (57,601 values)."""
        return self._paths.get((symbol, k), lambda: self._build_path(symbol, k))

    def _build_path(self, symbol: str, k: int) -> NDArray[np.float64]:
        state = self._state(symbol)
        z = self._noise(k)
        if symbol != "SPY":
            c = instrument_spec(symbol).market_corr
            own = self._rng("intraday", symbol, k + _DAY_OFFSET).standard_normal(SESSION_SECONDS)
            z = c * z + math.sqrt(1.0 - c * c) * own
        sd_day = state.vol[k] * math.sqrt(_DAY_YEARS)
        walk = np.empty(SESSION_SECONDS + 1)
        walk[0] = 0.0
        np.cumsum(z * (_SQRT_VAR_PROFILE * sd_day), out=walk[1:])
        start, end = state.log_close[k], state.log_close[k + 1]
        # Brownian bridge in variance time: subtract the walk's own end point, add the
        # daily move, both in proportion to the variance elapsed so far.
        walk += start + _CUM_VAR * (end - start - walk[-1])
        return np.exp(walk, out=walk)

    def minute_bars(self, symbol: str, k: int) -> MinuteBars:
        """OHLCV of each minute of day ``k`` (cached; built from the 1 s path)."""
        return self._minutes.get((symbol, k), lambda: self._build_minutes(symbol, k))

    def _build_minutes(self, symbol: str, k: int) -> MinuteBars:
        p = self.day_path(symbol, k)
        inner = p[:-1].reshape(_MINUTES, 60)
        close = p[60::60].copy()
        high = np.maximum(inner.max(axis=1), close)
        low = np.minimum(inner.min(axis=1), close)
        return MinuteBars(inner[:, 0].copy(), high, low, close, self._minute_volume(symbol, k))

    def _minute_volume(self, symbol: str, k: int) -> NDArray[np.int64]:
        level = self._state(symbol).volume_level[k]
        if level <= 0.0:
            return np.zeros(_MINUTES, dtype=np.int64)
        noise = self._rng("minute-volume", symbol, k + _DAY_OFFSET).lognormal(0.0, 0.45, _MINUTES)
        # Dividing by the lognormal's mean keeps the day's expected volume at ``level``.
        volume: NDArray[np.int64] = np.rint(level * _VOLUME_PROFILE * noise / math.exp(0.45**2 / 2)).astype(np.int64)
        return volume

    def second_volume(self, symbol: str, k: int) -> NDArray[np.int64]:
        """Shares traded in each second of day ``k``; each minute sums to its minute bar."""
        per_minute = self.minute_bars(symbol, k).volume
        weights = self._rng("second-volume", symbol, k + _DAY_OFFSET).exponential(1.0, (_MINUTES, 60))
        weights /= weights.sum(axis=1, keepdims=True)
        seconds = np.floor(weights * per_minute[:, None]).astype(np.int64)
        seconds[:, -1] += per_minute - seconds.sum(axis=1)  # rounding remainder goes to the last second
        return seconds.reshape(-1)

    def daily_bar(self, symbol: str, k: int) -> DailyBar:
        """Regular-session OHLC of day ``k`` and its whole-session volume (cached)."""
        key = (symbol, k)
        with self._lock:
            bar = self._summaries.get(key)
        if bar is None:
            m = self.minute_bars(symbol, k)
            lo, hi = REGULAR_OPEN_S // 60, REGULAR_CLOSE_S // 60
            bar = DailyBar(
                float(m.open[lo]),
                float(m.high[lo:hi].max()),
                float(m.low[lo:hi].min()),
                float(m.close[hi - 1]),
                int(m.volume.sum()),
            )
            with self._lock:
                self._summaries[key] = bar
        return bar
