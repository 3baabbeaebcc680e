"""Price functions: TIME_SERIES_INTRADAY, GLOBAL_QUOTE, INDEX_DATA and the 19 technical indicators.

Cash indices (SPX, NDX, RUT, VIX) have no intraday series, quote or indicator here, as
on the real service (alphavantage.md §11): time series and indicators answer ``Invalid
API call`` and GLOBAL_QUOTE answers ``{"Global Quote": {}}``. Their daily history is
served by the premium INDEX_DATA only.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from quanticity.simulation.alphavantage import formats, indicators, messages
from quanticity.simulation.alphavantage.query import Query, Rejection, Reply
from quanticity.simulation.calendar import REGULAR_CLOSE_S, et_datetime, to_et
from quanticity.simulation.instruments import INDEX_NAMES

__all__ = ["INTRADAY", "global_quote", "index_data", "technical_indicator", "time_series_intraday"]

INTRADAY = {"1min": 60, "5min": 300, "15min": 900, "30min": 1800, "60min": 3600}
_PERIODIC = ("daily", "weekly", "monthly")
Columns = dict[str, NDArray[Any]]


def _month_window(q: Query, month: date, cutoff: datetime) -> tuple[datetime, datetime]:
    first = et_datetime(month, time(0))
    nxt = date(month.year + (month.month == 12), month.month % 12 + 1, 1)
    if first >= cutoff:
        raise q.invalid()
    return first, min(et_datetime(nxt, time(0)), cutoff)


def time_series_intraday(q: Query) -> Reply:
    """TIME_SERIES_INTRADAY (premium): ``interval``, ``month``, ``outputsize``, ``extended_hours``, ``adjusted``.

    The simulated market has no splits or dividends, so adjusted and as-traded series coincide.
    """
    q.require_premium()
    symbol = q.equity()
    interval = q.choice("interval", tuple(INTRADAY))
    q.flag("adjusted", True)
    session: Literal["extended", "regular"] = "extended" if q.flag("extended_hours", True) else "regular"
    full = q.choice("outputsize", ("compact", "full"), "compact") == "full"
    csv = q.csv
    month = q.month()
    cutoff, _ = q.cutoff()
    seconds = INTRADAY[interval]
    if month is not None:
        start, end = _month_window(q, month, cutoff)
        bars = q.market.bars(symbol, seconds, start, end, session)
    else:
        end = cutoff
        bars = q.market.bars(symbol, seconds, end - timedelta(days=5 if not full else 30), end, session)
        if not full and bars["timestamp"].size < 100:
            bars = q.market.bars(symbol, seconds, end - timedelta(days=30), end, session)
    if bars["timestamp"].size == 0:
        raise q.invalid()
    if not full:
        bars = {k: v[-100:] for k, v in bars.items()}
    return formats.intraday_series(symbol, interval, bars, full, csv)


def global_quote(q: Query) -> Reply:
    """GLOBAL_QUOTE, with the delayed-feed key decoration and ``{}`` for unknown symbols."""
    symbol = q.symbol()
    csv = q.csv
    cutoff, delayed = q.cutoff()
    spec = q.market.spec(symbol)
    if not q.market.is_listed(symbol) or spec.kind not in ("stock", "etf") or "empty_global_quote" in q.faults:
        return formats.global_quote(symbol, None, None, delayed, csv)
    day = to_et(cutoff).date()
    daily = q.market.daily_bars(symbol, day - timedelta(days=10), day, as_of=cutoff)
    if np.asarray(daily["date"]).size < 2:  # the very start of the simulated history: nothing to quote against
        return formats.global_quote(symbol, None, None, delayed, csv)
    last, prev = -1, -2
    quote = {
        "open": float(daily["open"][last]),
        "high": float(daily["high"][last]),
        "low": float(daily["low"][last]),
        "price": float(daily["close"][last]),
        "volume": float(daily["volume"][last]),
        "previous_close": float(daily["close"][prev]),
    }
    latest: date = np.asarray(daily["date"])[last].astype(date)
    return formats.global_quote(symbol, quote, latest, delayed, csv)


def _last_closed_day(q: Query, t: datetime) -> date:
    k, s = q.market.calendar.session_second(t)
    return q.market.calendar.day(k if s >= REGULAR_CLOSE_S else k - 1)


def _aggregate(daily: Columns, interval: str) -> Columns:
    """Weekly or monthly bars from daily ones, each labelled by its last trading day."""
    if interval == "daily" or np.asarray(daily["date"]).size == 0:
        return daily
    days = np.asarray(daily["date"]).astype("datetime64[D]")
    if interval == "weekly":
        key = (days - np.datetime64("1970-01-05")).astype(np.int64) // 7  # Monday-based weeks
    else:
        key = days.astype("datetime64[M]").astype(np.int64)
    starts = np.concatenate(([0], np.flatnonzero(np.diff(key)) + 1))
    ends = np.concatenate((starts[1:], [key.size])) - 1
    return {
        "date": days[ends],
        "open": np.asarray(daily["open"])[starts],
        "high": np.maximum.reduceat(np.asarray(daily["high"]), starts),
        "low": np.minimum.reduceat(np.asarray(daily["low"]), starts),
        "close": np.asarray(daily["close"])[ends],
        "volume": np.add.reduceat(np.asarray(daily["volume"]), starts),
    }


def index_data(q: Query) -> Reply:
    """INDEX_DATA (premium, ``index_data`` entitlement): daily/weekly/monthly index levels, no volume."""
    q.require_premium()
    if not q.plan.has("index_data"):
        raise Rejection(messages.premium_endpoint())
    symbol = q.symbol()
    if symbol not in INDEX_NAMES:
        raise q.invalid()
    interval = q.choice("interval", _PERIODIC)
    csv = q.csv
    last = _last_closed_day(q, q.now)
    daily = q.market.daily_bars(symbol, last - timedelta(days=q.config.daily_history_days), last)
    return formats.index_data(symbol, INDEX_NAMES[symbol], interval, _aggregate(daily, interval), csv)


# --------------------------------------------------------------------- indicators
_SERIES = ("close", "open", "high", "low")
_TIME_PERIOD_ONLY = ("WILLR", "ADX", "CCI", "MFI", "MINUS_DI", "PLUS_DI", "AROON")


def _indicator_params(q: Query) -> dict[str, int | float | str]:
    f = q.function
    p: dict[str, int | float | str] = {}
    if f in ("SMA", "EMA", "WMA", "DEMA", "TEMA", "RSI", "BBANDS", *_TIME_PERIOD_ONLY):
        p["time_period"] = q.integer("time_period")
    if f in ("SMA", "EMA", "WMA", "DEMA", "TEMA", "RSI", "BBANDS", "MACD"):
        p["series_type"] = q.choice("series_type", _SERIES)
    matype = {"low": 0, "high": len(indicators.MA_TYPES) - 1}
    if f == "STOCH":
        p |= {
            "fastkperiod": q.integer("fastkperiod", 5),
            "slowkperiod": q.integer("slowkperiod", 3),
            "slowkmatype": q.integer("slowkmatype", 0, **matype),
            "slowdperiod": q.integer("slowdperiod", 3),
            "slowdmatype": q.integer("slowdmatype", 0, **matype),
        }
    elif f == "STOCHF":
        p |= {
            "fastkperiod": q.integer("fastkperiod", 5),
            "fastdperiod": q.integer("fastdperiod", 3),
            "fastdmatype": q.integer("fastdmatype", 0, **matype),
        }
    elif f == "MACD":
        p |= {
            "fastperiod": q.integer("fastperiod", 12),
            "slowperiod": q.integer("slowperiod", 26),
            "signalperiod": q.integer("signalperiod", 9),
        }
    elif f == "BBANDS":
        p |= {
            "nbdevup": q.number("nbdevup", 2.0),
            "nbdevdn": q.number("nbdevdn", 2.0),
            "matype": q.integer("matype", 0, **matype),
        }
    return p


def _lookback_bars(params: dict[str, int | float | str]) -> int:
    periods = [int(v) for k, v in params.items() if "period" in k]
    return 3 * max(periods, default=1) + 60


def technical_indicator(q: Query) -> Reply:
    """The 19 indicators of alphavantage.md §5 on the simulated series (MACD and VWAP are premium).

    Intraday intervals use the extended-hours series (TIME_SERIES_INTRADAY's default) over
    ``month`` or the trailing 30 days, warmed up on earlier bars; daily/weekly/monthly use
    ``daily_history_days`` of daily bars.
    """
    f = q.function
    if f in ("MACD", "VWAP"):
        q.require_premium()
    symbol = q.equity()
    interval = q.choice("interval", (*INTRADAY, *_PERIODIC))
    if f == "VWAP" and interval not in INTRADAY:
        raise q.invalid()
    params = _indicator_params(q)
    month = q.month()
    csv = q.csv
    cutoff, _ = q.cutoff()
    if interval in INTRADAY:
        seconds = INTRADAY[interval]
        start, end = _month_window(q, month, cutoff) if month else (cutoff - timedelta(days=30), cutoff)
        bars_per_day = 57_600 // seconds
        warm_days = math.ceil(_lookback_bars(params) / bars_per_day * 7 / 5) + 4
        raw = q.market.bars(symbol, seconds, start - timedelta(days=warm_days), end)
        ts = np.asarray(raw["timestamp"])
        session = (ts // 10**9 - 6 * 3600) // 86_400  # 04:00-20:00 ET never crosses 06:00 UTC
        keep = ts >= int(start.timestamp()) * 10**9
        stamps_all = ts
    else:
        if month is not None:
            raise q.invalid()
        day = to_et(cutoff).date()
        raw = _aggregate(
            q.market.daily_bars(symbol, day - timedelta(days=q.config.daily_history_days), day, as_of=cutoff), interval
        )
        stamps_all = np.asarray(raw["date"])
        session = np.arange(stamps_all.size, dtype=np.int64)
        keep = np.ones(stamps_all.size, dtype=bool)
    columns = {c: np.asarray(raw[c], dtype=np.float64) for c in ("open", "high", "low", "close", "volume")}
    series = indicators.compute(f, columns, params, session)
    valid = keep & np.all([~np.isnan(v) for v in series.values()], axis=0)
    rows = np.flatnonzero(valid)[::-1]
    if rows.size == 0:
        raise q.invalid()
    if interval in INTRADAY:
        stamps = formats.et_strings(stamps_all[rows], "m")
        last_refreshed = formats.et_strings(stamps_all[rows[:1]], "s")[0]
    else:
        stamps = [str(d) for d in stamps_all[rows].astype(str).tolist()]
        last_refreshed = stamps[0]
    values = {k: formats.fixed(v[rows], 4) for k, v in series.items()}
    return formats.indicator(f, symbol, interval, params, stamps, last_refreshed, values, csv)
