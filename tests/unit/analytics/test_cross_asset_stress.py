"""Cross-asset stress: full revaluation against the Greeks approximation, betas, vol rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quanticity.analytics.cross_asset_stress import (
    DEFAULT_BETAS,
    DEFAULT_SCENARIOS,
    VOL_FLOOR,
    CrossAssetBetas,
    MarketState,
    StressPosition,
    StressScenario,
    stress_test,
)
from quanticity.analytics.greeks_engine import compute_greeks
from quanticity.analytics.inputs import AnalyticsInputError

MONTH = 30.0 / 365.0
MARKET = MarketState(
    spot={"SPY": 500.0, "QQQ": 430.0, "IWM": 210.0, "AAPL": 195.0}, rate=0.04, dividend_yield={"SPY": 0.013}
)
BOOK = (
    StressPosition("SPY", 10, 500.0, MONTH, True, 0.18),
    StressPosition("SPY", -20, 470.0, MONTH, False, 0.22),
    StressPosition("QQQ", 5, 420.0, 7 / 365, False, 0.25),
    StressPosition("IWM", -300.0),
    StressPosition("AAPL", 3, 200.0, 0.25, True, 0.30),
)
STRADDLE = (StressPosition("SPY", 1, 500.0, MONTH, True, 0.2), StressPosition("SPY", 1, 500.0, MONTH, False, 0.2))
ONLY_SPY = MarketState(spot={"SPY": 500.0}, rate=0.04)


def one(book: tuple[StressPosition, ...], scenario: StressScenario, market: MarketState = MARKET, **kw: object):  # type: ignore[no-untyped-def]
    return stress_test(book, market, [scenario], **kw).results[0]  # type: ignore[arg-type]


def test_zero_shock_gives_exactly_zero_pnl() -> None:
    for rule in ("sticky_strike", "sticky_delta"):
        res = one(BOOK, StressScenario("nothing"), vol_rule=rule)
        assert np.all(res.pnl_full == 0.0) and np.all(res.pnl_approx == 0.0)
        assert res.total_full == 0.0 and res.shocked_spot["SPY"] == 500.0


def test_full_revaluation_is_the_price_difference_by_hand() -> None:
    pos = StressPosition("SPY", -7, 480.0, MONTH, False, 0.2, multiplier=100.0)
    res = one((pos,), StressScenario("s", equity_pct=-3.0, rates_bp=25.0, vol_points=4.0), ONLY_SPY)
    before = compute_greeks(500.0, 480.0, MONTH, 0.04, 0.0, 0.2, False).price
    after = compute_greeks(485.0, 480.0, MONTH, 0.0425, 0.0, 0.24, False).price
    assert res.pnl_full[0] == pytest.approx(-700.0 * float(after - before), rel=1e-13)
    g = compute_greeks(500.0, 480.0, MONTH, 0.04, 0.0, 0.2, False)
    approx = float(g.delta * -15 + 0.5 * g.gamma * 225 + g.vega * 0.04 + g.rho * 0.0025)
    assert res.pnl_approx[0] == pytest.approx(-700.0 * approx, rel=1e-13)


def test_small_spot_shocks_agree_to_third_order() -> None:
    errors = []
    for pct in (0.8, 0.4, 0.2, 0.1):
        res = one(BOOK[:3], StressScenario("s", equity_pct=pct))
        assert res.total_approx == pytest.approx(res.total_full, rel=2e-3)
        errors.append(abs(res.approximation_error))
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert np.all((ratios > 6.0) & (ratios < 10.0)), ratios  # halving the move divides the error by ~8


def test_vol_shock_error_is_the_vomma_term() -> None:
    # Out of the money, where vomma dominates the third-order term: the gap is 1/2 vomma dsigma^2.
    g = compute_greeks(500.0, 550.0, MONTH, 0.04, 0.0, 0.2, True)
    for d_vol in (0.01, 0.005):
        res = one(
            (StressPosition("SPY", 1, 550.0, MONTH, True, 0.2),), StressScenario("v", vol_points=100 * d_vol), ONLY_SPY
        )
        second_order = 100.0 * 0.5 * float(g.vomma) * d_vol**2
        assert res.total_full - res.total_approx == pytest.approx(second_order, rel=2 * d_vol)


def test_large_moves_expose_the_quadratic_approximation() -> None:
    # A long straddle: gamma fades away from the strike, so the quadratic overstates the gain.
    crash = one(STRADDLE, StressScenario("crash", equity_pct=-20.0), ONLY_SPY)
    assert crash.total_full > 0.0
    assert crash.total_approx > 1.5 * crash.total_full
    # Short the same: the approximation overstates the loss by as much.
    short = tuple(
        StressPosition(p.underlying, -p.quantity, p.strike, p.expiry_years, p.is_call, p.vol) for p in STRADDLE
    )
    assert one(short, StressScenario("crash", equity_pct=-20.0), ONLY_SPY).total_full == pytest.approx(
        -crash.total_full
    )
    small = one(STRADDLE, StressScenario("wiggle", equity_pct=1.0), ONLY_SPY)
    assert abs(small.approximation_error) < 0.01 * abs(small.total_full)


def test_delta_one_positions_move_linearly() -> None:
    res = one((StressPosition("IWM", -300.0),), StressScenario("s", equity_pct=-10.0, rates_bp=100.0))
    move = 210.0 * (1.15 * -10.0 + -1.0 * 1.0) / 100.0
    assert res.pnl_full[0] == pytest.approx(-300.0 * move) == res.pnl_approx[0]
    assert math.isnan(res.shocked_vol[0])


def test_cross_asset_betas_by_hand() -> None:
    rates_2022 = next(s for s in DEFAULT_SCENARIOS if s.name == "rates_shock_2022")
    res = one(BOOK, rates_2022)
    qqq = 1.2 * -10.0 + -1.5 * 1.5 + -0.02 * 30.0 + -0.1 * 8.0
    assert res.shocked_spot["QQQ"] == pytest.approx(430.0 * (1 + qqq / 100.0))
    assert res.shocked_spot["SPY"] == pytest.approx(450.0)
    assert res.shocked_spot["AAPL"] == pytest.approx(195.0 * 0.9)  # default betas: index beta 1
    assert res.shocked_vol[2] == pytest.approx(0.25 + 1.15 * 0.10)


def test_sticky_delta_moves_a_strike_along_the_smile() -> None:
    scenario = StressScenario("s", equity_pct=-7.0, vol_points=15.0)
    strike = one(STRADDLE[:1], scenario, ONLY_SPY, vol_rule="sticky_strike")
    delta = one(STRADDLE[:1], scenario, ONLY_SPY, vol_rule="sticky_delta")
    assert strike.shocked_vol[0] == pytest.approx(0.35)
    assert delta.shocked_vol[0] == pytest.approx(0.35 + 0.60 * math.log(0.93))
    assert delta.total_full < strike.total_full  # lower vol on a long call
    flat = {"SPY": CrossAssetBetas(skew=0.0)}
    same = one(STRADDLE, scenario, ONLY_SPY, vol_rule="sticky_delta", betas=flat)
    np.testing.assert_array_equal(same.pnl_full, one(STRADDLE, scenario, ONLY_SPY, betas=flat).pnl_full)


def test_vol_floor_applies() -> None:
    res = one(STRADDLE[:1], StressScenario("crush", vol_points=-50.0), ONLY_SPY)
    assert res.shocked_vol[0] == VOL_FLOOR


def test_default_scenarios_and_report() -> None:
    report = stress_test(BOOK, MARKET)
    names = [r.scenario.name for r in report.results]
    assert names == [s.name for s in DEFAULT_SCENARIOS]
    assert {"covid_crash_2020_03", "rates_shock_2022", "vol_spike_10", "flash_crash"} <= set(names)
    flash = next(s for s in DEFAULT_SCENARIOS if s.name == "flash_crash")
    assert (flash.equity_pct, flash.vol_points) == (-7.0, 15.0)
    assert report.defaulted_betas == ("AAPL",)
    assert report.worst().total_full == min(r.total_full for r in report.results)
    rows = report.to_table()
    assert len(rows) == len(DEFAULT_SCENARIOS) * (len(BOOK) + 1)
    total = next(r for r in rows if r["scenario"] == "flash_crash" and r["position"] == "TOTAL")
    parts = [float(r["pnl_full"]) for r in rows if r["scenario"] == "flash_crash" and r["position"] != "TOTAL"]
    assert total["pnl_full"] == pytest.approx(sum(parts))
    assert report.positions[0] == "SPY 500C 0.08219y" and report.positions[3] == "IWM"
    assert set(DEFAULT_BETAS) == {"SPY", "SPX", "QQQ", "IWM"}


@settings(max_examples=40)
@given(
    st.floats(-30.0, 30.0),
    st.floats(-200.0, 200.0),
    st.floats(-15.0, 40.0),
    st.floats(-5.0, 5.0),
    st.sampled_from(["sticky_strike", "sticky_delta"]),
)
def test_book_pnl_is_the_sum_of_its_positions_and_scales(
    equity: float, bp: float, vol: float, factor: float, rule: str
) -> None:
    scenario = StressScenario("h", equity_pct=equity, rates_bp=bp, oil_pct=equity, usd_pct=-equity / 3, vol_points=vol)
    whole = one(BOOK, scenario, vol_rule=rule)
    for i, pos in enumerate(BOOK):
        alone = one((pos,), scenario, vol_rule=rule)
        assert alone.pnl_full[0] == pytest.approx(whole.pnl_full[i], rel=1e-12, abs=1e-9)
    assert whole.total_full == pytest.approx(float(whole.pnl_full.sum()))
    scaled = tuple(
        StressPosition(p.underlying, p.quantity * factor, p.strike, p.expiry_years, p.is_call, p.vol) for p in BOOK
    )
    res = one(scaled, scenario, vol_rule=rule)
    np.testing.assert_allclose(res.pnl_full, whole.pnl_full * factor, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(res.pnl_approx, whole.pnl_approx * factor, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: StressScenario("x", equity_pct=-100.0), "equity_pct"),
        (lambda: StressScenario("x", vol_points=math.nan), "vol_points"),
        (lambda: StressPosition("SPY", 1, 500.0, MONTH, True, math.nan), "vol"),
        (lambda: StressPosition("SPY", 1, 500.0, 0.0, True, 0.2), "expiry_years"),
        (lambda: StressPosition("SPY", math.inf), "quantity"),
        (lambda: MarketState({"SPY": -1.0}, 0.04), "spot['SPY']"),
        (lambda: CrossAssetBetas(equity=math.nan), "equity"),
        (lambda: stress_test(BOOK, ONLY_SPY), "market"),
        (lambda: stress_test(BOOK, MARKET, []), "scenarios"),
        (lambda: stress_test(BOOK, MARKET, vol_rule="sticky_moneyness"), "vol_rule"),  # type: ignore[arg-type]
        (lambda: stress_test(BOOK, MARKET, [StressScenario("x", equity_pct=-90.0)]), "scenarios"),
    ],
)
def test_bad_input_names_the_argument(call: object, argument: str) -> None:
    with pytest.raises(AnalyticsInputError) as info:
        call()  # type: ignore[operator]
    assert info.value.argument == argument
