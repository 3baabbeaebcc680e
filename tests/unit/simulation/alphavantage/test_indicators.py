"""Tests of the simulator's indicator math against hand-checkable cases (TA-Lib conventions)."""

from __future__ import annotations

import numpy as np
import pytest

from quanticity.simulation.alphavantage import indicators as ind

# The StockCharts RSI worked example (Wilder smoothing), whose published RSI values start 70.53, 66.32, 66.55.
X = np.array(
    [
        44.3389,
        44.0902,
        44.1497,
        43.6124,
        44.3278,
        44.8264,
        45.0955,
        45.4245,
        45.8433,
        46.0826,
        45.8931,
        46.0328,
        45.6140,
        46.2820,
        46.2820,
        46.0028,
        46.0328,
        46.4116,
        46.2222,
        45.6439,
        46.2122,
        46.2521,
        45.7137,
        46.4515,
        45.7835,
        45.3548,
        44.0288,
        44.1783,
        44.2181,
        44.5672,
        43.4205,
        42.6628,
        43.1314,
    ]
)


def test_sma_and_wma_by_hand() -> None:
    """SMA(3) of 1..5 is 2,3,4; WMA(3) weights the newest value most."""
    x = np.arange(1.0, 6.0)
    assert np.allclose(ind.sma(x, 3)[2:], [2, 3, 4]) and np.isnan(ind.sma(x, 3)[:2]).all()
    assert ind.wma(x, 3)[2] == pytest.approx((1 + 2 * 2 + 3 * 3) / 6)


def test_ema_is_seeded_with_the_sma() -> None:
    """The first EMA value is the SMA of the first n values, then alpha = 2/(n+1)."""
    e = ind.ema(X, 10)
    assert e[9] == pytest.approx(X[:10].mean())
    assert e[10] == pytest.approx(e[9] + 2 / 11 * (X[10] - e[9]))
    assert np.allclose(ind.dema(np.full(40, 5.0), 5)[8:], 5.0) and np.allclose(ind.tema(np.full(40, 5.0), 5)[12:], 5.0)


def test_rsi_matches_wilders_worked_example() -> None:
    """The worked example's published RSI(14) values, from its 15th price on."""
    r = ind.rsi(X, 14)
    assert np.isnan(r[13]) and np.allclose(r[14:19], [70.53, 66.32, 66.55, 69.41, 66.36], atol=0.01)
    assert np.all(ind.rsi(np.arange(30.0), 14)[14:] == 100.0)


def test_bounded_oscillators() -> None:
    """WILLR in [-100, 0], stochastics and MFI in [0, 100], Aroon 100 on a fresh high."""
    rng = np.random.default_rng(0)
    close = 100 + np.cumsum(rng.normal(0, 1, 300))
    high, low = close + rng.uniform(0, 1, 300), close - rng.uniform(0, 1, 300)
    volume = rng.uniform(1e3, 1e4, 300)
    w = ind.willr(high, low, close, 14)[13:]
    assert np.all((w <= 0) & (w >= -100))
    m = ind.mfi(high, low, close, volume, 14)[14:]
    assert np.all((m >= 0) & (m <= 100))
    rising = np.arange(50.0)
    assert ind.aroon(rising + 1, rising, 25)["Aroon Up"][-1] == 100.0
    d = ind.directional(high, low, close, 14)
    assert np.all((d["ADX"][27:] >= 0) & (d["ADX"][27:] <= 100)) and np.isnan(d["ADX"][26])


def test_bollinger_and_macd_identities() -> None:
    """BBANDS are symmetric around their SMA middle; MACD_Hist = MACD - MACD_Signal."""
    bars = {"open": X, "high": X + 0.5, "low": X - 0.5, "close": X, "volume": np.ones_like(X)}
    params: dict[str, int | float | str] = {
        "time_period": 5,
        "series_type": "close",
        "nbdevup": 2.0,
        "nbdevdn": 2.0,
        "matype": 0,
    }
    b = ind.compute("BBANDS", bars, params, np.zeros(X.size, dtype=np.int64))
    mid = b["Real Middle Band"]
    assert np.allclose(mid[4:], ind.sma(X, 5)[4:])
    assert np.allclose((b["Real Upper Band"] - mid)[4:], (mid - b["Real Lower Band"])[4:])
    macd = ind.compute(
        "MACD",
        bars,
        {"series_type": "close", "fastperiod": 3, "slowperiod": 6, "signalperiod": 4},
        np.zeros(X.size, dtype=np.int64),
    )
    ok = ~np.isnan(macd["MACD_Signal"])
    assert ok.sum() == X.size - 8
    assert np.allclose(macd["MACD_Hist"][ok], (macd["MACD"] - macd["MACD_Signal"])[ok])


def test_obv_and_vwap() -> None:
    """OBV adds volume on up closes and subtracts on down ones; VWAP restarts each session."""
    close = np.array([10.0, 11.0, 10.5, 10.5, 12.0])
    volume = np.array([100.0, 200.0, 50.0, 70.0, 10.0])
    assert ind.obv(close, volume).tolist() == [100.0, 300.0, 250.0, 250.0, 260.0]
    session = np.array([0, 0, 0, 1, 1])
    v = ind.vwap(close, close, close, volume, session)
    assert v[2] == pytest.approx((10 * 100 + 11 * 200 + 10.5 * 50) / 350) and v[3] == pytest.approx(10.5)


@pytest.mark.parametrize("matype", ind.MA_TYPES)
def test_every_ma_type_tracks_a_constant(matype: int) -> None:
    """Every supported MA type of a constant series is that constant once warmed up."""
    out = ind.moving_average(np.full(200, 7.0), 5, matype)
    assert np.allclose(out[~np.isnan(out)], 7.0) and (~np.isnan(out)).sum() > 150
