"""Tests of quanticity.simulation.market: determinism, price levels, bars and daily bars."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from quanticity.simulation import MarketHorizonError, SimulatedMarket, SimulationRequestError
from quanticity.simulation.calendar import ET, holidays, is_trading_day, third_friday
from tests.unit.simulation.conftest import SEED, START

T = START + timedelta(hours=2, minutes=17, seconds=13)  # Monday 11:47:13 ET
OPEN_0400 = datetime(2026, 3, 2, 4, 0, tzinfo=ET)  # the anchor of the start prices


def test_same_seed_same_market_in_any_order() -> None:
    """Two markets with one seed agree, even when their days are generated in another order."""
    a = SimulatedMarket(SEED, START, ["SPY"])
    b = SimulatedMarket(SEED, START, ["SPY"])
    later = T + timedelta(days=9)
    first = [a.spot("AAPL", later), a.spot("SPY", T), a.spot("TSLA", T - timedelta(days=40))]
    second = [b.spot("TSLA", T - timedelta(days=40)), b.spot("SPY", T), b.spot("AAPL", later)]
    assert first == second[::-1]
    chain_a, chain_b = a.chain("QQQ", T), b.chain("QQQ", T)
    assert np.array_equal(chain_a.contract_id, chain_b.contract_id)
    assert np.array_equal(chain_a.bid, chain_b.bid) and np.array_equal(chain_a.ask_size, chain_b.ask_size)


def test_another_seed_gives_another_market() -> None:
    """The seed is used: a different one moves prices."""
    a = SimulatedMarket(1, START, [])
    b = SimulatedMarket(2, START, [])
    assert a.spot("SPY", T) != b.spot("SPY", T)


@pytest.mark.parametrize(("symbol", "level"), [("SPY", 600), ("QQQ", 520), ("IWM", 230), ("SPX", 6018), ("NVDA", 180)])
def test_start_prices(market: SimulatedMarket, symbol: str, level: float) -> None:
    """Each symbol opens the first simulated day at its configured level (SPX ~ 10x SPY)."""
    at_open = OPEN_0400
    assert market.spot(symbol, at_open) == pytest.approx(level, rel=1e-9)
    assert market.spot(symbol, T) == pytest.approx(level, rel=0.08)


def test_spx_moves_exactly_with_spy(market: SimulatedMarket) -> None:
    """SPX is SPY scaled by one constant at every second, so both sources tell one story."""
    for dt in (0, 1, 3601, 86_400 * 3 + 7):
        t = T + timedelta(seconds=dt)
        assert market.spot("SPX", t) / market.spot("SPY", t) == pytest.approx(10.03, rel=1e-12)


def test_unknown_symbols_get_stable_prices() -> None:
    """A symbol nobody configured has a hash-derived start price, the same for every seed."""
    a = SimulatedMarket(1, START, []).spot("ZZZQ", OPEN_0400)
    b = SimulatedMarket(99, START, []).spot("ZZZQ", OPEN_0400)
    assert a == pytest.approx(b) and 10.0 <= a <= 500.0


def test_price_holds_overnight_and_over_weekends(market: SimulatedMarket) -> None:
    """Outside 04:00-20:00 ET and on weekends the price is the last close."""
    friday_close = datetime(2026, 3, 6, 20, 0, tzinfo=ET)
    saturday = datetime(2026, 3, 7, 12, 0, tzinfo=ET)
    monday_early = datetime(2026, 3, 9, 3, 0, tzinfo=ET)
    assert market.spot("AAPL", saturday) == market.spot("AAPL", friday_close) == market.spot("AAPL", monday_early)


def test_bars_are_consistent_across_resolutions(market: SimulatedMarket) -> None:
    """Five-minute bars equal ten 30-second bars aggregated (minute and second paths agree)."""
    start, end = START, START + timedelta(hours=1)
    five = market.bars("MSFT", 300, start, end)
    thirty = market.bars("MSFT", 30, start, end)
    assert five["timestamp"].size == 12 and thirty["timestamp"].size == 120
    groups = thirty["high"].reshape(12, 10)
    assert np.allclose(five["high"], groups.max(axis=1))
    assert np.allclose(five["low"], thirty["low"].reshape(12, 10).min(axis=1))
    assert np.allclose(five["open"], thirty["open"][::10]) and np.allclose(five["close"], thirty["close"][9::10])
    assert np.array_equal(five["volume"], thirty["volume"].reshape(12, 10).sum(axis=1))


def test_bars_obey_ohlc_and_contain_spot(market: SimulatedMarket) -> None:
    """low <= open, close <= high; every 1 s price inside a minute lies within that minute's bar."""
    bars = market.bars("SPY", 60, START, START + timedelta(minutes=30))
    assert np.all(bars["low"] <= np.minimum(bars["open"], bars["close"]))
    assert np.all(bars["high"] >= np.maximum(bars["open"], bars["close"]))
    assert np.all(bars["volume"] > 0)
    for i in (0, 7, 29):
        bar_start = datetime.fromtimestamp(int(bars["timestamp"][i]) // 10**9, UTC)
        for s in (0, 13, 59):
            price = market.spot("SPY", bar_start + timedelta(seconds=s))
            assert bars["low"][i] <= price <= bars["high"][i]


def test_bars_cover_the_sessions_only(market: SimulatedMarket) -> None:
    """Extended bars run 04:00-19:59 ET on trading days; regular ones 09:30-15:59."""
    week = (START - timedelta(days=3), START + timedelta(days=4))
    extended = market.bars("SPY", 3600, *week)
    local = [datetime.fromtimestamp(int(t) // 10**9, UTC).astimezone(ET) for t in extended["timestamp"]]
    assert {t.hour for t in local} == set(range(4, 20))
    assert all(is_trading_day(t.date()) for t in local)
    regular = market.bars("SPY", 60, START - timedelta(hours=6), START + timedelta(hours=14), session="regular")
    first = datetime.fromtimestamp(int(regular["timestamp"][0]) // 10**9, UTC).astimezone(ET)
    last = datetime.fromtimestamp(int(regular["timestamp"][-1]) // 10**9, UTC).astimezone(ET)
    assert (first.hour, first.minute, last.hour, last.minute, regular["timestamp"].size) == (9, 30, 15, 59, 390)


def test_daily_bar_aggregates_the_regular_session(market: SimulatedMarket) -> None:
    """A daily bar is the 09:30-16:00 OHLC of the minute bars; an as-of cut gives the partial bar."""
    day = date(2026, 3, 3)
    daily = market.daily_bars("AAPL", day, day)
    minutes = market.bars("AAPL", 60, datetime(2026, 3, 3, 9, 30, tzinfo=ET), datetime(2026, 3, 3, 16, tzinfo=ET))
    assert daily["open"][0] == minutes["open"][0] and daily["close"][0] == minutes["close"][-1]
    assert daily["high"][0] == minutes["high"].max() and daily["low"][0] == minutes["low"].min()
    partial = market.daily_bars("AAPL", day, day, as_of=datetime(2026, 3, 3, 10, 0, tzinfo=ET))
    assert partial["close"][0] == minutes["close"][29] and partial["volume"][0] < daily["volume"][0]


def test_market_rejects_bad_requests(market: SimulatedMarket) -> None:
    """Named errors for a bad interval, a naive instant and a date outside the horizon."""
    with pytest.raises(SimulationRequestError):
        market.bars("SPY", 7, START, T)
    with pytest.raises(SimulationRequestError):
        market.spot("SPY", datetime(2026, 3, 2, 10, 0))
    with pytest.raises(MarketHorizonError):
        market.spot("SPY", START + timedelta(days=366 * 11))


def test_calendar_knows_nyse_holidays() -> None:
    """Good Friday, Juneteenth (observed) and Christmas are holidays; third Fridays are right."""
    assert date(2026, 4, 3) in holidays(2026) and date(2027, 6, 18) in holidays(2027)
    assert not is_trading_day(date(2026, 12, 25)) and is_trading_day(date(2026, 12, 24))
    assert third_friday(2026, 3) == date(2026, 3, 20)


def test_vix_moves_against_spx(market: SimulatedMarket) -> None:
    """The simulated VIX is a volatility level that rises when SPX falls within the day."""
    bars = market.bars("SPX", 60, START, START + timedelta(hours=6))
    lo, hi = int(np.argmin(bars["close"])), int(np.argmax(bars["close"]))
    at = [datetime.fromtimestamp(int(bars["timestamp"][i]) // 10**9 + 60, UTC) for i in (lo, hi)]
    vix_low_spx, vix_high_spx = market.spot("VIX", at[0]), market.spot("VIX", at[1])
    assert vix_low_spx > vix_high_spx and 5.0 < vix_high_spx < 80.0
