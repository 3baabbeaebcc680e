"""AlphaVantage JSON and CSV shapes (alphavantage.md §2-§7, §10-§11).

Pure functions from market data to the exact payloads: numbers as strings (except the
documented JSON numbers), the real key spellings (``"1. open"`` in time series,
``"1: Symbol"`` in indicators), newest first, naive US/Eastern timestamps. CSV lines
end with CRLF, which the real service is believed to send [U]; readers accept both.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

from quanticity.simulation.calendar import ET
from quanticity.simulation.chains import OptionChainTable

__all__ = [
    "OPTION_BASE_FIELDS",
    "OPTION_GREEK_FIELDS",
    "csv_text",
    "et_strings",
    "fixed",
    "global_quote",
    "index_data",
    "intraday_series",
    "macro",
    "option_columns",
]

Payload = dict[str, object]
CRLF = "\r\n"

OPTION_BASE_FIELDS = (
    "contractID",
    "symbol",
    "expiration",
    "strike",
    "type",
    "last",
    "mark",
    "bid",
    "bid_size",
    "ask",
    "ask_size",
    "volume",
    "open_interest",
    "date",
)
OPTION_GREEK_FIELDS = ("implied_volatility", "delta", "gamma", "theta", "vega", "rho")


def fixed(values: NDArray[Any] | Sequence[float], decimals: int) -> list[str]:
    """Numbers as fixed-point strings (``-0.00000`` stays signed, as the real feed prints it)."""
    spec = f".{decimals}f"
    return [format(x, spec) for x in np.asarray(values, dtype=np.float64).tolist()]


def _offset_s(epoch_s: int) -> int:
    offset = datetime.fromtimestamp(epoch_s, UTC).astimezone(ET).utcoffset() or timedelta(0)
    return int(offset.total_seconds())


def et_strings(ts_ns: NDArray[Any], unit: str = "s") -> list[str]:
    """UTC nanosecond timestamps as naive US/Eastern text: ``s`` seconds, ``m`` minutes, ``D`` date."""
    if ts_ns.size == 0:
        return []
    hours = ts_ns // (3600 * 10**9)
    unique, inverse = np.unique(hours, return_inverse=True)
    # The ET offset is constant within a clock hour, so one zoneinfo lookup per distinct hour suffices.
    offsets = np.array([_offset_s(int(h) * 3600) for h in unique.tolist()], dtype=np.int64)
    local = (ts_ns // 10**9 + offsets[inverse]).astype("datetime64[s]")
    width = {"s": 19, "m": 16, "D": 10}[unit]
    return [s[:width].replace("T", " ") for s in np.datetime_as_string(local).tolist()]


def csv_text(header: Sequence[str], columns: Sequence[Sequence[str]]) -> str:
    """A CSV document (values never contain commas, so no quoting is needed)."""
    lines = [",".join(header)]
    lines.extend(",".join(row) for row in zip(*columns, strict=True))
    return CRLF.join(lines) + CRLF


# --------------------------------------------------------------------- time series
def intraday_series(symbol: str, interval: str, bars: dict[str, NDArray[Any]], full: bool, csv: bool) -> Payload | str:
    """TIME_SERIES_INTRADAY: JSON (Meta Data + ``Time Series (<interval>)``) or CSV, newest first."""
    order = np.arange(bars["timestamp"].size)[::-1]
    stamps = et_strings(np.asarray(bars["timestamp"])[order])
    cols = [fixed(np.asarray(bars[c])[order], 4) for c in ("open", "high", "low", "close")]
    volume = [str(v) for v in np.asarray(bars["volume"])[order].tolist()]
    if csv:
        return csv_text(("timestamp", "open", "high", "low", "close", "volume"), (stamps, *cols, volume))
    series = {
        ts: {"1. open": o, "2. high": h, "3. low": lo, "4. close": c, "5. volume": v}
        for ts, o, h, lo, c, v in zip(stamps, *cols, volume, strict=True)
    }
    return {
        "Meta Data": {
            "1. Information": f"Intraday ({interval}) open, high, low, close prices and volume",
            "2. Symbol": symbol,
            "3. Last Refreshed": stamps[0] if stamps else "",
            "4. Interval": interval,
            "5. Output Size": "Full size" if full else "Compact",
            "6. Time Zone": "US/Eastern",
        },
        f"Time Series ({interval})": series,
    }


def global_quote(
    symbol: str, quote: dict[str, float] | None, latest_day: date | None, delayed: bool, csv: bool
) -> Payload | str:
    """GLOBAL_QUOTE; ``quote=None`` gives the empty ``{"Global Quote": {}}`` of unknown symbols."""
    key = "Global Quote - DATA DELAYED BY 15 MINUTES" if delayed else "Global Quote"
    if quote is None or latest_day is None:
        return (
            csv_text(
                (
                    "symbol",
                    "open",
                    "high",
                    "low",
                    "price",
                    "volume",
                    "latestDay",
                    "previousClose",
                    "change",
                    "changePercent",
                ),
                (),
            )
            if csv
            else {key: {}}
        )
    change = quote["price"] - quote["previous_close"]
    values = [
        symbol,
        *fixed([quote["open"], quote["high"], quote["low"], quote["price"]], 4),
        str(int(quote["volume"])),
        latest_day.isoformat(),
        *fixed([quote["previous_close"], change], 4),
        f"{100.0 * change / quote['previous_close']:.4f}%",
    ]
    if csv:
        return csv_text(
            (
                "symbol",
                "open",
                "high",
                "low",
                "price",
                "volume",
                "latestDay",
                "previousClose",
                "change",
                "changePercent",
            ),
            [[v] for v in values],
        )
    names = (
        "01. symbol",
        "02. open",
        "03. high",
        "04. low",
        "05. price",
        "06. volume",
        "07. latest trading day",
        "08. previous close",
        "09. change",
        "10. change percent",
    )
    return {key: dict(zip(names, values, strict=True))}


# --------------------------------------------------------------------- options
def option_columns(table: OptionChainTable, symbol: str, snapshot_date: date, greeks: bool) -> list[list[str]]:
    """The string columns of an options reply, in the feed's field order.

    Greeks change units on the way out. The analytics kernel gives theta per year and
    vega/rho per 1.00 of vol/rate; AlphaVantage prints theta per calendar day (the demo's
    0DTE IBM call shows -0.76550, a daily figure) and vega/rho per 1 percentage point,
    the convention of retail option chains. So theta/365, vega/100, rho/100.
    """
    n = len(table)
    ids = table.contract_id.tolist()
    columns = [
        ids,
        [symbol] * n,
        [str(d) for d in table.expiration.astype(str).tolist()],
        fixed(table.strike, 2),
        table.right.tolist(),
        fixed(table.last, 2),
        fixed(table.mark, 2),
        fixed(table.bid, 2),
        [str(x) for x in table.bid_size.tolist()],
        fixed(table.ask, 2),
        [str(x) for x in table.ask_size.tolist()],
        [str(x) for x in table.volume.tolist()],
        [str(x) for x in table.open_interest.tolist()],
        [snapshot_date.isoformat()] * n,
    ]
    if greeks:
        columns += [
            fixed(table.implied_volatility, 5),
            fixed(table.delta, 5),
            fixed(table.gamma, 5),
            fixed(table.theta / 365.0, 5),
            fixed(table.vega / 100.0, 5),
            fixed(table.rho / 100.0, 5),
        ]
    return columns


def options(
    endpoint: str, table: OptionChainTable, symbol: str, snapshot_date: date, greeks: bool, csv: bool
) -> Payload | str:
    """REALTIME_OPTIONS / HISTORICAL_OPTIONS envelope (or CSV) around a chain."""
    fields = OPTION_BASE_FIELDS + (OPTION_GREEK_FIELDS if greeks else ())
    columns = option_columns(table, symbol, snapshot_date, greeks)
    if csv:
        return csv_text(fields, columns)
    return {
        "endpoint": endpoint,
        "message": "success",
        "data": [dict(zip(fields, row, strict=True)) for row in zip(*columns, strict=True)],
    }


# --------------------------------------------------------------------- indicators
# function -> (indicator name, Meta Data parameter keys (after "4: Interval"), time-zone text).
# Time zone: "US/Eastern" for the moving averages, RSI, MACD and VWAP; "US/Eastern Time" for
# the rest, including BBANDS, whose 2020 capture (S5 bbands.json) says "US/Eastern Time".
_PERIOD_SERIES = (("5: Time Period", "time_period"), ("6: Series Type", "series_type"))
_PERIOD = (("5: Time Period", "time_period"),)
_MACD = (("5.1: Fast Period", "fastperiod"), ("5.2: Slow Period", "slowperiod"),
         ("5.3: Signal Period", "signalperiod"), ("6: Series Type", "series_type"))  # fmt: skip
_STOCH = (("5.1: FastK Period", "fastkperiod"), ("5.2: SlowK Period", "slowkperiod"),
          ("5.3: SlowK MA Type", "slowkmatype"), ("5.4: SlowD Period", "slowdperiod"),
          ("5.5: SlowD MA Type", "slowdmatype"))  # fmt: skip
_STOCHF = (("5.1: FastK Period", "fastkperiod"), ("5.2: FastD Period", "fastdperiod"),
           ("5.3: FastD MA Type", "fastdmatype"))  # fmt: skip
_BBANDS = (("5: Time Period", "time_period"), ("6.1: Deviation multiplier for upper band", "nbdevup"),
           ("6.2: Deviation multiplier for lower band", "nbdevdn"), ("6.3: MA Type", "matype"),
           ("7: Series Type", "series_type"))  # fmt: skip
_EASTERN, _EASTERN_TIME = "US/Eastern", "US/Eastern Time"

# function -> (indicator name, Meta Data parameter keys after "4: Interval", time-zone text).
# Time zone: "US/Eastern" for the moving averages, RSI, MACD and VWAP; "US/Eastern Time" for
# the rest, including BBANDS, whose 2020 capture (S5 bbands.json) says "US/Eastern Time".
INDICATOR_META: dict[str, tuple[str, tuple[tuple[str, str], ...], str]] = {
    "SMA": ("Simple Moving Average (SMA)", _PERIOD_SERIES, _EASTERN),
    "EMA": ("Exponential Moving Average (EMA)", _PERIOD_SERIES, _EASTERN),
    "WMA": ("Weighted Moving Average (WMA)", _PERIOD_SERIES, _EASTERN),
    "DEMA": ("Double Exponential Moving Average (DEMA)", _PERIOD_SERIES, _EASTERN),
    "TEMA": ("Triple Exponential Moving Average (TEMA)", _PERIOD_SERIES, _EASTERN),
    "RSI": ("Relative Strength Index (RSI)", _PERIOD_SERIES, _EASTERN),
    "WILLR": ("Williams' %R (WILLR)", _PERIOD, _EASTERN_TIME),
    "STOCH": ("Stochastic (STOCH)", _STOCH, _EASTERN_TIME),
    "STOCHF": ("Stochastic Fast (STOCHF)", _STOCHF, _EASTERN_TIME),
    "MACD": ("Moving Average Convergence/Divergence (MACD)", _MACD, _EASTERN),
    "BBANDS": ("Bollinger Bands (BBANDS)", _BBANDS, _EASTERN_TIME),
    "ADX": ("Average Directional Movement Index (ADX)", _PERIOD, _EASTERN_TIME),
    "CCI": ("Commodity Channel Index (CCI)", _PERIOD, _EASTERN_TIME),
    "MFI": ("Money Flow Index (MFI)", _PERIOD, _EASTERN_TIME),
    "MINUS_DI": ("Minus Directional Indicator (MINUS_DI)", _PERIOD, _EASTERN_TIME),
    "PLUS_DI": ("Plus Directional Indicator (PLUS_DI)", _PERIOD, _EASTERN_TIME),
    "OBV": ("On Balance Volume (OBV)", (), _EASTERN_TIME),
    "AROON": ("Aroon (AROON)", _PERIOD, _EASTERN_TIME),
    "VWAP": ("Volume Weighted Average Price (VWAP)", (), _EASTERN),
}


def _meta_value(value: int | float | str) -> int | float | str:
    """Integer parameters are JSON numbers in Meta Data (``"5: Time Period": 10``)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def indicator(
    function: str,
    symbol: str,
    interval: str,
    params: dict[str, int | float | str],
    stamps: list[str],
    last_refreshed: str,
    values: dict[str, list[str]],
    csv: bool,
) -> Payload | str:
    """A technical indicator: Meta Data + ``Technical Analysis: <FUNCTION>`` (or CSV), newest first.

    Args:
        function: indicator function.
        symbol: symbol as requested.
        interval: interval as requested.
        params: validated parameters.
        stamps: row keys, newest first.
        last_refreshed: the ``3: Last Refreshed`` text.
        values: value key -> strings aligned with ``stamps``, in the JSON key order.
        csv: CSV instead of JSON; CSV columns are alphabetical (``time,MACD,MACD_Hist,MACD_Signal``,
            ``time,Real Lower Band,Real Middle Band,Real Upper Band``, as consumers quote them).
    """
    if csv:
        keys = sorted(values)
        return csv_text(("time", *keys), (stamps, *(values[k] for k in keys)))
    name, param_keys, zone = INDICATOR_META[function]
    meta: dict[str, object] = {
        "1: Symbol": symbol,
        "2: Indicator": name,
        "3: Last Refreshed": last_refreshed,
        "4: Interval": interval,
    }
    for label, param in param_keys:
        meta[label] = _meta_value(params[param])
    number = len(meta) + 1 if not param_keys else int(float(param_keys[-1][0].split(":")[0])) + 1
    meta[f"{number}: Time Zone"] = zone
    keys = list(values)
    rows = {ts: {k: values[k][i] for k in keys} for i, ts in enumerate(stamps)}
    return {"Meta Data": meta, f"Technical Analysis: {function}": rows}


# --------------------------------------------------------------------- macro, index, status
MACRO_META: dict[str, tuple[str, str]] = {
    "REAL_GDP": ("Real Gross Domestic Product", "billions of dollars"),
    "REAL_GDP_PER_CAPITA": ("Real Gross Domestic Product per Capita", "chained 2012 dollars"),
    "FEDERAL_FUNDS_RATE": ("Effective Federal Funds Rate", "percent"),
    "CPI": ("Consumer Price Index for all Urban Consumers", "index 1982-1984=100"),
    "INFLATION": ("Inflation - US Consumer Prices", "percent"),
    "RETAIL_SALES": ("Advance Retail Sales: Retail Trade", "millions of dollars"),
    "DURABLES": ("Manufacturer New Orders: Durable Goods", "millions of dollars"),
    "UNEMPLOYMENT": ("Unemployment Rate", "percent"),
    "NONFARM_PAYROLL": ("Total Nonfarm Payroll", "thousands of persons"),
}
_MATURITY_NAMES = {
    "3month": "3-Month",
    "2year": "2-Year",
    "5year": "5-Year",
    "7year": "7-Year",
    "10year": "10-Year",
    "30year": "30-Year",
}


def _macro_value(function: str, value: float | None) -> str:
    if value is None:
        return "."
    if function == "INFLATION":
        return repr(round(value, 14))  # the real feed prints long decimals ("8.00279982052121")
    if function in ("REAL_GDP", "CPI"):
        return f"{value:.3f}"
    if function in ("RETAIL_SALES", "DURABLES", "NONFARM_PAYROLL", "REAL_GDP_PER_CAPITA"):
        return f"{value:.0f}"
    if function == "UNEMPLOYMENT":
        return f"{value:.1f}"
    return f"{value:.2f}"


def macro(
    function: str, interval: str, maturity: str | None, observations: list[tuple[date, float | None]], csv: bool
) -> Payload | str:
    """An economic series ``{"name", "interval", "unit", "data": [{"date", "value"}]}``; CSV ``timestamp,value`` [U]."""
    dates = [d.isoformat() for d, _ in observations]
    values = [_macro_value(function, v) for _, v in observations]
    if csv:
        return csv_text(("timestamp", "value"), (dates, values))
    if function == "TREASURY_YIELD":
        name, unit = f"{_MATURITY_NAMES[maturity or '10year']} Treasury Constant Maturity Rate", "percent"
    else:
        name, unit = MACRO_META[function]
    return {
        "name": name,
        "interval": interval,
        "unit": unit,
        "data": [{"date": d, "value": v} for d, v in zip(dates, values, strict=True)],
    }


def index_data(symbol: str, name: str, interval: str, bars: dict[str, NDArray[Any]], csv: bool) -> Payload | str:
    """INDEX_DATA: ``{"symbol", "name", "interval", "data": [{"date", "open", "high", "low", "close"}]}`` [3P]."""
    order = np.arange(bars["date"].size)[::-1]
    dates = [str(d) for d in np.asarray(bars["date"])[order].astype(str).tolist()]
    cols = [fixed(np.asarray(bars[c], dtype=np.float64)[order], 4) for c in ("open", "high", "low", "close")]
    if csv:
        return csv_text(("date", "open", "high", "low", "close"), (dates, *cols))
    return {
        "symbol": symbol,
        "name": name,
        "interval": interval,
        "data": [
            {"date": d, "open": o, "high": h, "low": lo, "close": c}
            for d, o, h, lo, c in zip(dates, *cols, strict=True)
        ],
    }
