"""Tests of the simulated option chains: sizes, order, no-arbitrage, quotes, Greeks, smiles."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import numpy as np
import pytest

from quanticity.analytics.greeks_engine import compute_greeks
from quanticity.simulation import OptionChainTable, SimulatedMarket, with_junk_greeks
from quanticity.simulation.calendar import ET
from tests.unit.simulation.conftest import START

T = START + timedelta(hours=2, minutes=17, seconds=13)  # Monday 11:47:13 ET
_OCC = re.compile(r"^(?P<root>[A-Z]+)(?P<date>\d{6})(?P<right>[CP])(?P<strike>\d{8})$")


@pytest.mark.parametrize("day", [T, T + timedelta(days=3), T + timedelta(days=31)])
def test_chain_sizes_are_realistic(market: SimulatedMarket, day: datetime) -> None:
    """A full SPY chain has 8-10k contracts; the SPX family (SPX + SPXW) about 20k."""
    assert 8_000 <= len(market.chain("SPY", day)) <= 10_000
    assert 17_000 <= len(market.chain("SPX", day)) <= 23_000


def _sorted_rows(chain: OptionChainTable) -> list[tuple[str, float, bool]]:
    return list(
        zip(chain.expiration.astype(str).tolist(), chain.strike.tolist(), (~chain.is_call).tolist(), strict=True)
    )


def test_chain_is_sorted_by_expiration_then_strike(market: SimulatedMarket) -> None:
    """Rows come by expiration, then strike, call before put, as AlphaVantage sends them."""
    for symbol in ("SPY", "SPXW", "AAPL"):
        rows = _sorted_rows(market.chain(symbol, T))
        assert rows == sorted(rows) and len(set(rows)) == len(rows)


def test_contract_ids_are_occ_style(market: SimulatedMarket) -> None:
    """IDs are root + YYMMDD + C/P + strike x 1000 in 8 digits, matching the columns."""
    chain = market.chain("SPX", T)
    for i in range(0, len(chain), 997):
        m = _OCC.match(str(chain.contract_id[i]))
        assert m is not None
        assert m["root"] == chain.root[i] and m["root"] in ("SPX", "SPXW")
        assert datetime.strptime(m["date"], "%y%m%d").date() == chain.expiration[i].astype(date)
        assert int(m["strike"]) == round(chain.strike[i] * 1000)
        assert (m["right"] == "C") == bool(chain.is_call[i])


def test_put_call_parity_holds_on_mids_within_the_spread(market: SimulatedMarket) -> None:
    """C_mid - P_mid is within the two half-spreads of S e^-qT - K e^-rT for every strike."""
    chain = market.chain("SPY", T)
    calls, puts = chain.take(chain.is_call), chain.take(~chain.is_call)
    assert np.array_equal(calls.strike, puts.strike) and np.array_equal(calls.expiration, puts.expiration)
    t = calls.expiry_years
    forward = chain.spot * np.exp(-chain.dividend_yield * t) - calls.strike * np.exp(-chain.rate * t)
    gap = np.abs((calls.bid + calls.ask) / 2 - (puts.bid + puts.ask) / 2 - forward)
    allowance = (calls.ask - calls.bid + puts.ask - puts.bid) / 2
    assert np.all(gap <= allowance + 1e-9)


def test_quotes_are_well_formed(market: SimulatedMarket) -> None:
    """0 <= bid < ask, mark is the rounded mid, sizes are integers, no bid means no bid size."""
    chain = market.chain("QQQ", T)
    assert np.all(chain.bid >= 0) and np.all(chain.ask > chain.bid) and np.all(chain.ask >= 0.01)
    assert np.allclose(chain.mark, np.floor((chain.bid + chain.ask) * 50 + 0.5) / 100)
    assert chain.bid_size.dtype == np.int64 and np.all((chain.bid_size == 0) == (chain.bid == 0))
    assert np.all(chain.volume >= 0) and np.all(chain.open_interest >= 0)
    assert np.all((chain.last == 0) == ((chain.volume == 0) & (chain.open_interest == 0)))


def test_spreads_widen_away_from_the_money_and_toward_expiry(market: SimulatedMarket) -> None:
    """Deep in-the-money quotes are wider than at-the-money ones; the same-day ATM quote is the widest relative."""
    chain = market.chain("SPY", T)
    expiries = np.unique(chain.expiration)
    month = chain.take(chain.expiration == expiries[12])
    spread = month.ask - month.bid
    deep, atm = np.abs(month.delta) > 0.9, np.abs(np.abs(month.delta) - 0.5) < 0.1
    assert np.median(spread[deep]) > np.median(spread[atm])
    otm_calls = month.take(month.is_call & (month.strike > month.spot) & (month.bid > 0))
    relative = (otm_calls.ask - otm_calls.bid) / otm_calls.mark
    assert relative[-1] > relative[0]

    def atm_relative(table: OptionChainTable) -> float:
        i = int(np.argmin(np.abs(table.strike - table.spot) + 1e6 * ~table.is_call))
        return float((table.ask[i] - table.bid[i]) / table.mark[i])

    assert atm_relative(chain.take(chain.expiration == expiries[0])) > atm_relative(month)


def test_greeks_have_the_right_signs(market: SimulatedMarket) -> None:
    """Calls: 0 <= delta <= 1, rho >= 0; puts: -1 <= delta <= 0, rho <= 0; gamma, vega >= 0."""
    chain = market.chain("AAPL", T)
    c, p = chain.is_call, ~chain.is_call
    assert np.all((chain.delta[c] >= 0) & (chain.delta[c] <= 1)) and np.all(chain.rho[c] >= 0)
    assert np.all((chain.delta[p] >= -1) & (chain.delta[p] <= 0)) and np.all(chain.rho[p] <= 0)
    assert np.all(chain.gamma >= 0) and np.all(chain.vega >= 0)
    near = np.abs(chain.delta) < 0.9
    assert np.all(chain.theta[c & near] < 0)


def test_smile_has_put_skew_and_a_term_structure(market: SimulatedMarket) -> None:
    """Downside IVs exceed ATM; the skew is steeper for short expiries."""
    surface = market.vol_surface("SPY", T)
    spot = surface.spot
    for years in (7 / 365, 30 / 365, 1.0):
        ivs = surface.implied_vol(spot * np.array([0.85, 0.95, 1.0, 1.05]), years)
        assert ivs[0] > ivs[1] > ivs[2] and ivs[3] < ivs[2] * 1.05
    skew = [surface.implied_vol(spot * 0.95, y) - surface.implied_vol(spot, y) for y in (30 / 365, 1.0)]
    assert skew[0] > skew[1] > 0


def test_surface_is_free_of_static_arbitrage(market: SimulatedMarket) -> None:
    """Total variance grows with expiry at fixed moneyness; model call prices are convex in strike."""
    surface = market.vol_surface("QQQ", T)
    strikes = surface.spot * np.linspace(0.6, 1.5, 200)
    years = np.array([1 / 365, 7 / 365, 30 / 365, 0.25, 1.0, 2.0])
    forward = surface.forward(years)
    w = np.array([surface.total_variance(f * strikes / surface.spot, y) for f, y in zip(forward, years, strict=True)])
    assert np.all(np.diff(w, axis=0) > 0)
    t = 30 / 365
    prices = compute_greeks(
        surface.spot, strikes, t, surface.rate, surface.dividend_yield, surface.implied_vol(strikes, t), True
    ).price
    assert np.all(np.diff(prices, 2) >= -1e-9)


def test_expirations_follow_the_listing_rules(market: SimulatedMarket) -> None:
    """SPY: ten dailies then weeklies and monthlies out ~2 years; single names: Fridays and monthlies."""
    spy = market.expirations("SPY", T)
    assert spy[:10] == [d.date() for d in (datetime(2026, 3, day) for day in (2, 3, 4, 5, 6, 9, 10, 11, 12, 13))]
    assert date(2026, 4, 2) in spy  # the Good Friday weekly moves to Thursday
    assert date(2026, 3, 20) in spy and max(spy) >= date(2027, 12, 1) and max(spy) <= date(2028, 6, 30)
    aapl = market.expirations("AAPL", T)
    assert all(d.weekday() in (3, 4) for d in aapl) and len(aapl) < len(spy)
    spx = market.chain("SPX", T)
    am = spx.take(spx.root == "SPX")
    assert {d.weekday() for d in am.expiration.astype(date).tolist()} <= {3, 4}
    assert set(np.unique(market.chain("SPXW", T).root)) == {"SPXW"}


def test_expired_contracts_leave_the_chain(market: SimulatedMarket) -> None:
    """After 16:00 ET the same-day expiry is gone; SPX AM monthlies stop the evening before."""
    before = market.expirations("SPY", datetime(2026, 3, 6, 15, 59, tzinfo=ET))
    after = market.expirations("SPY", datetime(2026, 3, 6, 16, 1, tzinfo=ET))
    assert date(2026, 3, 6) in before and date(2026, 3, 6) not in after
    eve = market.chain("SPX", datetime(2026, 3, 19, 16, 1, tzinfo=ET))
    assert not np.any((eve.root == "SPX") & (eve.expiration == np.datetime64("2026-03-20")))


def test_junk_greeks_spoil_only_deep_itm_and_same_day_rows(market: SimulatedMarket) -> None:
    """With fraction 1 every eligible row gets an IV of 2-8; other rows and all quotes are untouched."""
    chain = market.chain("SPY", T)
    junk = with_junk_greeks(chain, 1.0, np.random.default_rng(3))
    eligible = (np.abs(chain.delta) > 0.95) | (chain.expiry_years < 1 / 365)
    assert np.all((junk.implied_volatility[eligible] >= 2.0) & (junk.implied_volatility[eligible] <= 8.0))
    assert np.array_equal(junk.implied_volatility[~eligible], chain.implied_volatility[~eligible])
    assert np.array_equal(junk.bid, chain.bid) and np.array_equal(junk.delta[~eligible], chain.delta[~eligible])


def test_option_quotes_hold_outside_the_regular_session(market: SimulatedMarket) -> None:
    """16:00 ET to the next 09:30 (and over a weekend) every chain is the close's; the underlying moves on."""
    close = datetime(2026, 3, 6, 16, 0, tzinfo=ET)  # a Friday
    at_close = market.chain("SPY", close)
    for later in (close + timedelta(minutes=5), close + timedelta(hours=3), datetime(2026, 3, 9, 9, 29, tzinfo=ET)):
        held = market.chain("SPY", later)
        assert market.option_quote_time(later) == close
        assert np.array_equal(held.contract_id, at_close.contract_id) and np.array_equal(held.mark, at_close.mark)
    assert market.spot("SPY", close + timedelta(hours=3)) != market.spot("SPY", close)  # extended hours trade
    opened = datetime(2026, 3, 9, 9, 31, tzinfo=ET)
    assert market.option_quote_time(opened) == opened
    assert not np.array_equal(market.chain("SPY", opened).mark, at_close.mark)
