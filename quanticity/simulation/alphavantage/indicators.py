"""Technical-indicator math of the AlphaVantage simulator (TA-Lib conventions).

Each function takes float64 arrays, oldest first, and returns arrays of the same length
with NaN where the indicator is still warming up. Conventions follow TA-Lib, which the
real service's outputs match: EMAs are seeded with the SMA of their first ``n`` values,
RSI/ADX/DI use Wilder smoothing, Bollinger bands use the population standard deviation.
Recursive filters are plain loops: series are at most a few tens of thousands of bars.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

__all__ = ["INDICATOR_FUNCTIONS", "MA_TYPES", "Series", "compute", "moving_average"]

Array = NDArray[np.float64]
Series = dict[str, Array]
MA_TYPES = (0, 1, 2, 3, 4, 5, 6, 7)  # SMA EMA WMA DEMA TEMA TRIMA T3 KAMA; 8 (MAMA) is not simulated


def _nan(n: int) -> Array:
    return np.full(n, np.nan)


def _on_valid(x: Array, fn: Callable[[Array], Array]) -> Array:
    """Apply ``fn`` to the run of values after the leading NaNs, keeping alignment."""
    valid = np.flatnonzero(~np.isnan(x))
    out = _nan(x.size)
    if valid.size:
        first = int(valid[0])
        out[first:] = fn(x[first:])
    return out


def sma(x: Array, n: int) -> Array:
    """Simple moving average."""
    out = _nan(x.size)
    if x.size >= n:
        c = np.concatenate(([0.0], np.cumsum(x)))
        out[n - 1 :] = (c[n:] - c[:-n]) / n
    return out


def _ema_raw(x: Array, n: int, alpha: float) -> Array:
    out = _nan(x.size)
    if x.size < n:
        return out
    value = float(np.mean(x[:n]))
    out[n - 1] = value
    for i in range(n, x.size):
        value += alpha * (x[i] - value)
        out[i] = value
    return out


def ema(x: Array, n: int) -> Array:
    """Exponential moving average seeded with the SMA of the first ``n`` values."""
    return _on_valid(x, lambda v: _ema_raw(v, n, 2.0 / (n + 1.0)))


def wma(x: Array, n: int) -> Array:
    """Linearly weighted moving average (weights 1..n, newest heaviest)."""

    def run(v: Array) -> Array:
        out = _nan(v.size)
        if v.size >= n:
            w = np.arange(1.0, n + 1.0)
            out[n - 1 :] = np.convolve(v, w[::-1], "valid") / w.sum()
        return out

    return _on_valid(x, run)


def dema(x: Array, n: int) -> Array:
    """Double EMA: 2*EMA - EMA(EMA)."""
    e1 = ema(x, n)
    return 2.0 * e1 - ema(e1, n)


def tema(x: Array, n: int) -> Array:
    """Triple EMA: 3*E1 - 3*E2 + E3."""
    e1 = ema(x, n)
    e2 = ema(e1, n)
    return 3.0 * e1 - 3.0 * e2 + ema(e2, n)


def trima(x: Array, n: int) -> Array:
    """Triangular moving average: an SMA of an SMA."""
    first, second = ((n + 1) // 2, (n + 1) // 2) if n % 2 else (n // 2, n // 2 + 1)
    return _on_valid(sma(x, first), lambda v: sma(v, second))


def t3(x: Array, n: int, v: float = 0.7) -> Array:
    """Tillson T3 (six chained EMAs, volume factor 0.7)."""
    e = [ema(x, n)]
    for _ in range(5):
        e.append(ema(e[-1], n))
    c1, c2 = -(v**3), 3 * v**2 + 3 * v**3
    c3, c4 = -6 * v**2 - 3 * v - 3 * v**3, 1 + 3 * v + v**3 + 3 * v**2
    return c1 * e[5] + c2 * e[4] + c3 * e[3] + c4 * e[2]


def kama(x: Array, n: int) -> Array:
    """Kaufman adaptive moving average (fast 2, slow 30)."""

    def run(v: Array) -> Array:
        out = _nan(v.size)
        if v.size <= n:
            return out
        fast, slow = 2.0 / 3.0, 2.0 / 31.0
        noise = np.abs(np.diff(v))
        value = float(v[n - 1])
        for i in range(n, v.size):
            volatility = float(noise[i - n : i].sum())
            er = abs(v[i] - v[i - n]) / volatility if volatility > 0 else 0.0
            value += (er * (fast - slow) + slow) ** 2 * (v[i] - value)
            out[i] = value
        return out

    return _on_valid(x, run)


def moving_average(x: Array, n: int, matype: int) -> Array:
    """The moving average selected by an AlphaVantage/TA-Lib MA-type code."""
    fn = (sma, ema, wma, dema, tema, trima, t3, kama)[matype]
    return fn(x, n)


def _rolling(x: Array, n: int, reducer: Callable[..., Array]) -> Array:
    out = _nan(x.size)
    if x.size >= n:
        out[n - 1 :] = reducer(sliding_window_view(x, n), axis=1)
    return out


def rsi(x: Array, n: int) -> Array:
    """Relative strength index (Wilder)."""
    out = _nan(x.size)
    if x.size <= n:
        return out
    d = np.diff(x)
    gain, loss = np.maximum(d, 0.0), np.maximum(-d, 0.0)
    ag, al = float(gain[:n].mean()), float(loss[:n].mean())
    for i in range(n, x.size):
        if i > n:
            ag = (ag * (n - 1) + gain[i - 1]) / n
            al = (al * (n - 1) + loss[i - 1]) / n
        out[i] = 100.0 if al == 0 else 100.0 - 100.0 / (1.0 + ag / al)
    return out


def _stoch_k(high: Array, low: Array, close: Array, n: int) -> Array:
    hh, ll = _rolling(high, n, np.max), _rolling(low, n, np.min)
    span = hh - ll
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(span > 0, 100.0 * (close - ll) / span, 0.0) + 0.0 * hh


def willr(high: Array, low: Array, close: Array, n: int) -> Array:
    """Williams' %R, between -100 and 0."""
    return _stoch_k(high, low, close, n) - 100.0


def _wilder_sum(x: Array, n: int) -> Array:
    """Wilder's running sum over ``x[1:]``: first the plain sum of n values, then S - S/n + x."""
    out = _nan(x.size)
    if x.size <= n:
        return out
    s = float(x[1 : n + 1].sum())
    out[n] = s
    for i in range(n + 1, x.size):
        s = s - s / n + x[i]
        out[i] = s
    return out


def directional(high: Array, low: Array, close: Array, n: int) -> Series:
    """PLUS_DI, MINUS_DI and ADX (Wilder), as TA-Lib computes them."""
    up = np.concatenate(([0.0], np.diff(high)))
    down = np.concatenate(([0.0], -np.diff(low)))
    plus_dm = np.where((up > down) & (up > 0), up, 0.0)
    minus_dm = np.where((down > up) & (down > 0), down, 0.0)
    prev = np.concatenate(([close[0]], close[:-1]))
    tr = np.maximum(high - low, np.maximum(np.abs(high - prev), np.abs(low - prev)))
    tr_s = _wilder_sum(tr, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        plus_di = np.where(tr_s > 0, 100.0 * _wilder_sum(plus_dm, n) / tr_s, 0.0) + 0.0 * tr_s
        minus_di = np.where(tr_s > 0, 100.0 * _wilder_sum(minus_dm, n) / tr_s, 0.0) + 0.0 * tr_s
        total = plus_di + minus_di
        dx = np.where(total > 0, 100.0 * np.abs(plus_di - minus_di) / total, 0.0) + 0.0 * total
    adx = _nan(close.size)
    if close.size >= 2 * n:
        value = float(dx[n : 2 * n].mean())
        adx[2 * n - 1] = value
        for i in range(2 * n, close.size):
            value = (value * (n - 1) + dx[i]) / n
            adx[i] = value
    return {"PLUS_DI": plus_di, "MINUS_DI": minus_di, "ADX": adx}


def cci(high: Array, low: Array, close: Array, n: int) -> Array:
    """Commodity channel index."""
    tp = (high + low + close) / 3.0
    mean = sma(tp, n)
    out = _nan(tp.size)
    if tp.size >= n:
        windows = sliding_window_view(tp, n)
        dev = np.abs(windows - mean[n - 1 :, None]).mean(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[n - 1 :] = np.where(dev > 0, (tp[n - 1 :] - mean[n - 1 :]) / (0.015 * dev), 0.0)
    return out


def mfi(high: Array, low: Array, close: Array, volume: Array, n: int) -> Array:
    """Money flow index."""
    tp = (high + low + close) / 3.0
    flow = tp * volume
    change = np.concatenate(([0.0], np.diff(tp)))
    pos = _rolling(np.where(change > 0, flow, 0.0), n, np.sum)
    neg = _rolling(np.where(change < 0, flow, 0.0), n, np.sum)
    out = _nan(tp.size)
    if tp.size > n:
        total = pos[n:] + neg[n:]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[n:] = np.where(total > 0, 100.0 * pos[n:] / total, 0.0)
    return out


def obv(close: Array, volume: Array) -> Array:
    """On-balance volume."""
    sign = np.sign(np.concatenate(([0.0], np.diff(close))))
    return np.asarray(volume[0] + np.cumsum(sign * volume) - sign[0] * volume[0], dtype=np.float64)


def aroon(high: Array, low: Array, n: int) -> Series:
    """Aroon up and down over ``n`` periods (windows of n+1 bars; ties go to the latest bar)."""
    up, down = _nan(high.size), _nan(high.size)
    if high.size > n:
        hw = sliding_window_view(high, n + 1)[:, ::-1]
        lw = sliding_window_view(low, n + 1)[:, ::-1]
        up[n:] = 100.0 * (n - np.argmax(hw, axis=1)) / n
        down[n:] = 100.0 * (n - np.argmin(lw, axis=1)) / n
    return {"Aroon Up": up, "Aroon Down": down}


def vwap(high: Array, low: Array, close: Array, volume: Array, session: NDArray[np.int64]) -> Array:
    """Volume-weighted average price, restarting every session."""
    tp = (high + low + close) / 3.0
    starts = np.concatenate(([0], np.flatnonzero(np.diff(session)) + 1))
    pv = np.cumsum(tp * volume)
    vv = np.cumsum(volume)
    base_pv = np.repeat(np.concatenate(([0.0], pv[starts[1:] - 1])), np.diff(np.concatenate((starts, [tp.size]))))
    base_v = np.repeat(np.concatenate(([0.0], vv[starts[1:] - 1])), np.diff(np.concatenate((starts, [tp.size]))))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(vv - base_v > 0, (pv - base_pv) / (vv - base_v), np.nan)


INDICATOR_FUNCTIONS = (
    "SMA",
    "EMA",
    "WMA",
    "DEMA",
    "TEMA",
    "RSI",
    "WILLR",
    "STOCH",
    "STOCHF",
    "MACD",
    "BBANDS",
    "ADX",
    "CCI",
    "MFI",
    "MINUS_DI",
    "PLUS_DI",
    "OBV",
    "AROON",
    "VWAP",
)


_PLAIN: dict[str, Callable[[Array, int], Array]] = {"SMA": sma, "EMA": ema, "WMA": wma, "DEMA": dema, "TEMA": tema,
                                                    "RSI": rsi}  # fmt: skip


def _stochastic(function: str, h: Array, lo: Array, c: Array, p: dict[str, int | float]) -> Series:
    fast_k = _stoch_k(h, lo, c, int(p["fastkperiod"]))
    if function == "STOCHF":
        fast_d = _on_valid(fast_k, lambda f: moving_average(f, int(p["fastdperiod"]), int(p["fastdmatype"])))
        return {"FastK": fast_k, "FastD": fast_d}
    slow_k = _on_valid(fast_k, lambda f: moving_average(f, int(p["slowkperiod"]), int(p["slowkmatype"])))
    slow_d = _on_valid(slow_k, lambda s: moving_average(s, int(p["slowdperiod"]), int(p["slowdmatype"])))
    return {"SlowK": slow_k, "SlowD": slow_d}


def compute(
    function: str,
    bars: dict[str, NDArray[np.float64]],
    params: dict[str, int | float | str],
    session: NDArray[np.int64],
) -> Series:
    """Evaluate one indicator on OHLCV bars.

    Args:
        function: one of ``INDICATOR_FUNCTIONS``.
        bars: ``open``, ``high``, ``low``, ``close``, ``volume`` as float64, oldest first.
        params: validated parameters (``time_period``, ``series_type``, MA periods and types...).
        session: a session id per bar (VWAP restarts when it changes).

    Returns:
        the output series keyed by AlphaVantage value key, NaN during warm-up.
    """
    h, lo, c, v = bars["high"], bars["low"], bars["close"], bars["volume"]
    x = bars[str(params.get("series_type", "close"))]
    n = int(params.get("time_period", 0))
    p = {k: val for k, val in params.items() if isinstance(val, (int, float))}
    if function in _PLAIN:
        return {function: _PLAIN[function](x, n)}
    if function in ("ADX", "PLUS_DI", "MINUS_DI"):
        return {function: directional(h, lo, c, n)[function]}
    single: dict[str, Callable[[], Array]] = {
        "WILLR": lambda: willr(h, lo, c, n),
        "CCI": lambda: cci(h, lo, c, n),
        "MFI": lambda: mfi(h, lo, c, v, n),
        "OBV": lambda: obv(c, v),
        "VWAP": lambda: vwap(h, lo, c, v, session),
    }
    if function in single:
        return {function: single[function]()}
    if function == "AROON":
        return aroon(h, lo, n)
    if function in ("STOCH", "STOCHF"):
        return _stochastic(function, h, lo, c, p)
    if function == "MACD":
        line = ema(x, int(p["fastperiod"])) - ema(x, int(p["slowperiod"]))
        signal = ema(line, int(p["signalperiod"]))
        return {"MACD": line, "MACD_Signal": signal, "MACD_Hist": line - signal}
    if function == "BBANDS":
        mid = moving_average(x, n, int(p["matype"]))
        sd = _rolling(x, n, np.std)
        return {
            "Real Upper Band": mid + float(p["nbdevup"]) * sd,
            "Real Middle Band": mid,
            "Real Lower Band": mid - float(p["nbdevdn"]) * sd,
        }
    raise KeyError(function)
