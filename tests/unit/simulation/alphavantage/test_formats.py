"""Tests of the AlphaVantage JSON/CSV shapes: key spellings, string numbers, ordering, CSV headers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from quanticity.simulation import SimulatedMarket
from quanticity.simulation.alphavantage import formats
from quanticity.simulation.alphavantage.indicators import INDICATOR_FUNCTIONS
from tests.unit.simulation.conftest import START

T = START + timedelta(hours=1)


def test_et_strings_follow_daylight_saving() -> None:
    """14:30 UTC is 09:30 EST in March before the switch and 10:30 EDT after it."""
    winter = int(datetime(2026, 3, 6, 14, 30, tzinfo=UTC).timestamp()) * 10**9
    summer = int(datetime(2026, 3, 9, 14, 30, tzinfo=UTC).timestamp()) * 10**9
    assert formats.et_strings(np.array([winter, summer])) == ["2026-03-06 09:30:00", "2026-03-09 10:30:00"]
    assert formats.et_strings(np.array([summer]), "m") == ["2026-03-09 10:30"]


def test_intraday_series_shape(market: SimulatedMarket) -> None:
    """Meta keys '1. Information'..'6. Time Zone', data key per interval, string numbers, newest first."""
    bars = market.bars("SPY", 300, START, T)
    payload = formats.intraday_series("SPY", "5min", bars, False, False)
    assert isinstance(payload, dict)
    assert list(payload["Meta Data"]) == [
        "1. Information",
        "2. Symbol",
        "3. Last Refreshed",
        "4. Interval",
        "5. Output Size",
        "6. Time Zone",
    ]
    assert payload["Meta Data"]["5. Output Size"] == "Compact"
    series = payload["Time Series (5min)"]
    stamps = list(series)
    assert stamps == sorted(stamps, reverse=True) and stamps[0] == "2026-03-02 10:25:00"
    row = series[stamps[0]]
    assert list(row) == ["1. open", "2. high", "3. low", "4. close", "5. volume"]
    assert all(isinstance(v, str) for v in row.values()) and row["5. volume"].isdigit()
    text = formats.intraday_series("SPY", "5min", bars, True, True)
    assert isinstance(text, str) and text.startswith("timestamp,open,high,low,close,volume\r\n2026-03-02 10:25:00,")


def test_global_quote_shape() -> None:
    """Numbered keys, '%' suffix on the change percent, delayed decoration, empty object, CSV header."""
    quote = {"open": 1.0, "high": 2.0, "low": 0.5, "price": 1.5, "volume": 1234.0, "previous_close": 1.2}
    payload = formats.global_quote("IBM", quote, date(2026, 3, 2), False, False)
    body = payload["Global Quote"]
    assert list(body) == [
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
    ]
    assert body["10. change percent"] == "25.0000%" and body["09. change"] == "0.3000"
    delayed = formats.global_quote("IBM", quote, date(2026, 3, 2), True, False)
    assert list(delayed) == ["Global Quote - DATA DELAYED BY 15 MINUTES"]
    assert formats.global_quote("NOPE", None, None, False, False) == {"Global Quote": {}}
    text = formats.global_quote("IBM", quote, date(2026, 3, 2), False, True)
    assert text == (
        "symbol,open,high,low,price,volume,latestDay,previousClose,change,changePercent\r\n"
        "IBM,1.0000,2.0000,0.5000,1.5000,1234,2026-03-02,1.2000,0.3000,25.0000%\r\n"
    )


def test_options_rows_and_greek_units(market: SimulatedMarket) -> None:
    """20 string fields in the feed's order; theta per day, vega and rho per percentage point."""
    chain = market.chain("SPY", T)
    first = chain.take(np.arange(3))
    payload = formats.options("Realtime Options", first, "SPY", date(2026, 3, 2), True, False)
    assert payload["endpoint"] == "Realtime Options" and payload["message"] == "success"
    row = payload["data"][0]
    assert tuple(row) == formats.OPTION_BASE_FIELDS + formats.OPTION_GREEK_FIELDS
    assert all(isinstance(v, str) for v in row.values())
    assert row["theta"] == f"{chain.theta[0] / 365:.5f}" and row["vega"] == f"{chain.vega[0] / 100:.5f}"
    assert row["rho"] == f"{chain.rho[0] / 100:.5f}" and row["strike"] == f"{chain.strike[0]:.2f}"
    plain = formats.options("Realtime Options", first, "SPY", date(2026, 3, 2), False, False)
    assert tuple(plain["data"][0]) == formats.OPTION_BASE_FIELDS
    text = formats.options("Realtime Options", first, "SPY", date(2026, 3, 2), True, True)
    assert isinstance(text, str) and text.split("\r\n")[0] == (
        "contractID,symbol,expiration,strike,type,last,mark,bid,bid_size,ask,ask_size,volume,open_interest,date,"
        "implied_volatility,delta,gamma,theta,vega,rho"
    )


def test_negative_zero_keeps_its_sign() -> None:
    """Like the real feed ('-0.00000'), tiny negative values keep their sign."""
    assert formats.fixed(np.array([-1e-9, 0.0, 1.234567]), 5) == ["-0.00000", "0.00000", "1.23457"]


_META_KEYS = {
    "SMA": ["5: Time Period", "6: Series Type", "7: Time Zone"],
    "WILLR": ["5: Time Period", "6: Time Zone"],
    "MACD": ["5.1: Fast Period", "5.2: Slow Period", "5.3: Signal Period", "6: Series Type", "7: Time Zone"],
    "STOCH": [
        "5.1: FastK Period",
        "5.2: SlowK Period",
        "5.3: SlowK MA Type",
        "5.4: SlowD Period",
        "5.5: SlowD MA Type",
        "6: Time Zone",
    ],
    "STOCHF": ["5.1: FastK Period", "5.2: FastD Period", "5.3: FastD MA Type", "6: Time Zone"],
    "BBANDS": [
        "5: Time Period",
        "6.1: Deviation multiplier for upper band",
        "6.2: Deviation multiplier for lower band",
        "6.3: MA Type",
        "7: Series Type",
        "8: Time Zone",
    ],
    "OBV": ["5: Time Zone"],
    "VWAP": ["5: Time Zone"],
}
_PARAMS: dict[str, int | float | str] = {
    "time_period": 10,
    "series_type": "close",
    "fastperiod": 12,
    "slowperiod": 26,
    "signalperiod": 9,
    "fastkperiod": 5,
    "slowkperiod": 3,
    "slowkmatype": 0,
    "slowdperiod": 3,
    "slowdmatype": 0,
    "fastdperiod": 3,
    "fastdmatype": 0,
    "nbdevup": 2.0,
    "nbdevdn": 2.0,
    "matype": 0,
}


@pytest.mark.parametrize("function", INDICATOR_FUNCTIONS)
def test_indicator_meta_data(function: str) -> None:
    """Colon-numbered Meta Data keys, integer parameters as JSON numbers, the time-zone quirk."""
    payload = formats.indicator(
        function, "IBM", "daily", _PARAMS, ["2026-03-02"], "2026-03-02", {function: ["1.0000"]}, False
    )
    meta = payload["Meta Data"]
    keys = list(meta)
    assert keys[:4] == ["1: Symbol", "2: Indicator", "3: Last Refreshed", "4: Interval"]
    assert keys[4:] == _META_KEYS.get(
        function, _META_KEYS["WILLR"] if function not in ("EMA", "WMA", "DEMA", "TEMA", "RSI") else _META_KEYS["SMA"]
    )
    zone = meta[keys[-1]]
    assert zone == (
        "US/Eastern" if function in ("SMA", "EMA", "WMA", "DEMA", "TEMA", "RSI", "MACD", "VWAP") else "US/Eastern Time"
    )
    numbers = [meta[k] for k in keys if "Period" in k or "MA Type" in k or "multiplier" in k]
    assert all(isinstance(n, int) for n in numbers)
    assert f"Technical Analysis: {function}" in payload


def test_indicator_csv_columns_are_alphabetical() -> None:
    """Multi-value indicators list their columns alphabetically after 'time', as consumers quote them."""
    values = {"Real Upper Band": ["3"], "Real Middle Band": ["2"], "Real Lower Band": ["1"]}
    text = formats.indicator("BBANDS", "IBM", "daily", _PARAMS, ["2026-03-02"], "2026-03-02", values, True)
    assert text == "time,Real Lower Band,Real Middle Band,Real Upper Band\r\n2026-03-02,1,2,3\r\n"


def test_macro_shape() -> None:
    """name/interval/unit/data with string values and '.' for a missing observation."""
    obs: list[tuple[date, float | None]] = [(date(2026, 2, 27), 4.351), (date(2026, 2, 26), None)]
    payload = formats.macro("TREASURY_YIELD", "daily", "2year", obs, False)
    assert payload == {
        "name": "2-Year Treasury Constant Maturity Rate",
        "interval": "daily",
        "unit": "percent",
        "data": [{"date": "2026-02-27", "value": "4.35"}, {"date": "2026-02-26", "value": "."}],
    }
    cpi = formats.macro("CPI", "monthly", None, [(date(2026, 1, 1), 320.1234)], False)
    assert cpi["unit"] == "index 1982-1984=100" and cpi["data"] == [{"date": "2026-01-01", "value": "320.123"}]
    assert (
        formats.macro("UNEMPLOYMENT", "monthly", None, obs, True)
        == "timestamp,value\r\n2026-02-27,4.4\r\n2026-02-26,.\r\n"
    )


def test_index_data_shape(market: SimulatedMarket) -> None:
    """INDEX_DATA: symbol, name, interval, data newest first with string OHLC and no volume."""
    daily = market.daily_bars("SPX", date(2026, 3, 2), date(2026, 3, 6))
    payload = formats.index_data("SPX", "S&P 500 Index", "daily", daily, False)
    assert list(payload) == ["symbol", "name", "interval", "data"]
    rows = payload["data"]
    assert [r["date"] for r in rows] == ["2026-03-06", "2026-03-05", "2026-03-04", "2026-03-03", "2026-03-02"]
    assert list(rows[0]) == ["date", "open", "high", "low", "close"]
