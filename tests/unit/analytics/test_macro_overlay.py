"""Macro overlay: transforms, z-scores by hand, staleness, curve, real rate and the composite."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quanticity.analytics.inputs import AnalyticsInputError
from quanticity.analytics.macro_overlay import (
    DEFAULT_MACRO_WEIGHTS,
    MacroObservations,
    macro_overlay,
)
from quanticity.schemas.reference import MacroSeries
from quanticity.simulation.calendar import TradingCalendar
from quanticity.simulation.macro import MACRO_INTERVALS, MacroModel


def months(first: date, n: int) -> list[date]:
    out = []
    y, m = first.year, first.month
    for _ in range(n):
        out.append(date(y, m, 1))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


UNEMPLOYMENT = [3.7, 3.9, 3.9, 3.9, 4.0, 4.1, 4.3, 4.2, 4.1, 4.1, 4.2, 4.1, 4.0, 4.1, 4.4]
U_DATES = months(date(2024, 1, 1), len(UNEMPLOYMENT))  # 2024-01 .. 2025-03
AS_OF = date(2025, 4, 20)


def unemployment() -> MacroObservations:
    return MacroObservations.create("UNEMPLOYMENT", "monthly", U_DATES, UNEMPLOYMENT)


def daily(
    function: str, values: list[float], maturity: str | None = None, end: date = date(2025, 4, 17)
) -> MacroObservations:
    dates = [end - timedelta(days=len(values) - 1 - i) for i in range(len(values))]
    return MacroObservations.create(function, "daily", dates, values, maturity)


# --------------------------------------------------------------------------- by hand
def test_zscore_surprise_and_momentum_by_hand() -> None:
    signal = macro_overlay([unemployment()], AS_OF).signals["UNEMPLOYMENT"]
    v = np.array(UNEMPLOYMENT)
    hist = v[:-1]
    assert signal.signal == 4.4 and signal.latest_value == 4.4 and signal.latest_date == date(2025, 3, 1)
    assert signal.n_history == 14
    assert signal.zscore == pytest.approx((4.4 - hist.mean()) / hist.std(ddof=1), rel=1e-12)
    changes = np.diff(v)
    assert signal.surprise == pytest.approx((0.3 - changes[:-1].mean()) / changes[:-1].std(ddof=1), rel=1e-12)
    moves = v[3:] - v[:-3]
    assert signal.momentum == pytest.approx(moves[-1] / moves[:-1].std(ddof=1), rel=1e-12)


def test_lookback_window_limits_the_history() -> None:
    signal = macro_overlay([unemployment()], AS_OF, lookback_years=1.0).signals["UNEMPLOYMENT"]
    assert signal.n_history == 11  # 2024-04 .. 2025-02: dates after 2025-03-01 minus 365 days
    hist = np.array(UNEMPLOYMENT[3:-1])
    assert signal.zscore == pytest.approx((4.4 - hist.mean()) / hist.std(ddof=1), rel=1e-12)


def test_short_history_gives_nan_not_a_number_from_two_points() -> None:
    obs = MacroObservations.create("UNEMPLOYMENT", "monthly", U_DATES[:5], UNEMPLOYMENT[:5])
    signal = macro_overlay([obs], date(2024, 6, 1)).signals["UNEMPLOYMENT"]
    assert math.isnan(signal.zscore) and signal.n_history == 4


def test_transforms_by_hand() -> None:
    cpi_values: list[float | None] = [300.0 + 0.8 * i for i in range(16)]
    cpi_values[-1] = None  # not yet valued: the latest valid print is the one before
    cpi = MacroObservations.create("CPI", "monthly", months(date(2024, 1, 1), 16), cpi_values)
    payroll = MacroObservations.create(
        "NONFARM_PAYROLL", "monthly", months(date(2024, 10, 1), 3), [100.0, 250.0, 180.0]
    )
    gdp = MacroObservations.create("REAL_GDP", "quarterly", [date(2024, 7, 1), date(2024, 10, 1)], [23000.0, 23200.0])
    retail = MacroObservations.create("RETAIL_SALES", "monthly", months(date(2024, 1, 1), 13), [700.0] * 12 + [735.0])
    out = macro_overlay([cpi, payroll, gdp, retail], date(2025, 5, 1)).signals
    assert out["CPI"].transform == "yoy_pct" and out["CPI"].latest_date == date(2025, 3, 1)
    assert out["CPI"].signal == pytest.approx(100.0 * (cpi_values[14] / cpi_values[2] - 1.0), rel=1e-12)  # type: ignore[operator]
    assert out["NONFARM_PAYROLL"].signal == pytest.approx(-70.0)
    assert out["REAL_GDP"].signal == pytest.approx(100.0 * ((23200.0 / 23000.0) ** 4 - 1.0), rel=1e-12)
    assert out["RETAIL_SALES"].signal == pytest.approx(5.0)


def test_a_gap_in_a_level_series_uses_the_latest_valid_print() -> None:
    obs = MacroObservations.create(
        "TREASURY_YIELD", "daily", [date(2025, 4, 16), date(2025, 4, 17)], [4.3, None], "10year"
    )
    signal = macro_overlay([obs], AS_OF).signals["TREASURY_YIELD:10year"]
    assert signal.latest_date == date(2025, 4, 16) and signal.signal == 4.3


def test_curve_real_rate_and_composite_by_hand() -> None:
    cpi = MacroObservations.create(
        "CPI", "monthly", months(date(2024, 2, 1), 13), [310.0] + [0.0 + 315.0] * 11 + [316.2]
    )
    series = [
        daily("TREASURY_YIELD", [4.40, 4.35], "10year"),
        daily("TREASURY_YIELD", [3.90, 3.95], "2year"),
        daily("TREASURY_YIELD", [4.30, 4.31], "3month"),
        daily("FEDERAL_FUNDS_RATE", [4.33, 4.33]),
        cpi,
    ]
    out = macro_overlay(series, AS_OF)
    inflation = 100.0 * (316.2 / 310.0 - 1.0)
    assert out.curve_10y_2y == pytest.approx(0.40)
    assert out.curve_10y_3m == pytest.approx(0.04)
    assert out.inflation_source == "CPI"
    assert out.real_rate == pytest.approx(4.33 - inflation)
    c_curve = math.tanh(-0.04)
    c_rr = math.tanh((4.33 - inflation - 1.0) / 2.0)
    assert out.components["curve"] == pytest.approx(c_curve)
    assert out.components["real_rate"] == pytest.approx(c_rr)
    # CPI has too little history for a z-score: inflation is unavailable, not zero.
    assert "inflation" in out.unavailable and math.isnan(out.components["inflation"])
    assert out.risk_score == pytest.approx((0.25 * c_curve + 0.15 * c_rr) / 0.40)
    assert out.coverage == pytest.approx(0.40)
    assert out.weights_used == pytest.approx({"curve": 0.625, "real_rate": 0.375})


def test_inverting_the_curve_raises_the_risk_score() -> None:
    def score(ten_year: float) -> float:
        series = [daily("TREASURY_YIELD", [ten_year], "10year"), daily("TREASURY_YIELD", [4.3], "3month")]
        return macro_overlay(series, AS_OF).risk_score

    assert score(3.3) > score(4.3) > score(5.3)
    assert score(3.3) == pytest.approx(math.tanh(1.0))


def test_annual_inflation_is_the_fallback_for_the_real_rate() -> None:
    infl = MacroObservations.create("INFLATION", "annual", [date(2023, 1, 1), date(2024, 1, 1)], [4.1, 2.9])
    out = macro_overlay([infl, daily("FEDERAL_FUNDS_RATE", [4.33])], AS_OF)
    assert out.inflation_source == "INFLATION" and out.real_rate == pytest.approx(4.33 - 2.9)


# --------------------------------------------------------------------------- staleness
def test_stale_observation_is_flagged_and_left_out() -> None:
    fresh = macro_overlay([unemployment(), daily("TREASURY_YIELD", [4.0], "10year")], AS_OF)
    assert fresh.stale == () and not fresh.signals["UNEMPLOYMENT"].stale
    assert fresh.signals["UNEMPLOYMENT"].max_age_days == 2 * 31 + 10 + 7
    late = date(2025, 6, 1)  # March unemployment is 92 days old; April's print is overdue
    out = macro_overlay([unemployment(), daily("TREASURY_YIELD", [4.0], "10year", end=late - timedelta(days=1))], late)
    signal = out.signals["UNEMPLOYMENT"]
    assert signal.stale and signal.age_days == 92
    assert out.stale == ("UNEMPLOYMENT",)
    assert "unemployment" in out.unavailable and "unemployment" not in out.weights_used


def test_stale_yields_do_not_feed_the_curve() -> None:
    old = daily("TREASURY_YIELD", [4.5], "10year", end=date(2025, 3, 1))
    out = macro_overlay([old, daily("TREASURY_YIELD", [4.0], "2year")], AS_OF)
    assert out.stale == ("TREASURY_YIELD:10year",)
    assert math.isnan(out.curve_10y_2y)
    assert math.isnan(out.risk_score) and out.coverage == 0.0


# --------------------------------------------------------------------------- realistic data
def test_on_the_simulated_macro_model_everything_is_fresh_and_bounded() -> None:
    start = datetime(2025, 6, 2, 14, tzinfo=UTC)
    sim = MacroModel(7, start, TradingCalendar(date(2025, 1, 2), date(2025, 12, 31)))
    series = []
    for function, intervals in MACRO_INTERVALS.items():
        interval = {"TREASURY_YIELD": "daily", "FEDERAL_FUNDS_RATE": "daily", "REAL_GDP": "quarterly"}.get(
            function, intervals[0]
        )
        for maturity in ("10year", "2year", "3month") if function == "TREASURY_YIELD" else (None,):
            rows = sim.series(function, interval, maturity, start)[::-1]
            series.append(
                MacroObservations.create(function, interval, [d for d, _ in rows], [v for _, v in rows], maturity)
            )
    out = macro_overlay(series, start.date())
    assert out.stale == () and out.unavailable == ()
    assert out.coverage == pytest.approx(1.0)
    assert -1.0 <= out.risk_score <= 1.0
    assert 3.0 < out.signals["TREASURY_YIELD:10year"].signal < 6.0
    assert -2.0 < out.curve_10y_3m < 2.0
    assert all(math.isfinite(s.zscore) for s in out.signals.values())
    payload = out.to_dict()
    assert payload["signals"]["CPI"]["transform"] == "yoy_pct"


def test_from_series_record() -> None:
    record = MacroSeries(
        function="TREASURY_YIELD",
        name="2-Year Treasury Constant Maturity Rate",
        interval="daily",
        unit="percent",
        parameters={"maturity": "2year"},
        dates=[date(2025, 4, 16), date(2025, 4, 17)],
        values=[3.9, None],
        record_id="m-1",
        event_time=datetime(2025, 4, 18, tzinfo=UTC),
        source="alphavantage",
        run_id="r",
        mode="sim",
    )
    obs = MacroObservations.from_series(record)
    assert obs.key == "TREASURY_YIELD:2year"
    assert obs.values[0] == 3.9 and math.isnan(obs.values[1])


# --------------------------------------------------------------------------- invariants and errors
@settings(max_examples=60)
@given(
    st.lists(st.floats(0.5, 9.0), min_size=14, max_size=30),
    st.lists(st.floats(-300.0, 500.0), min_size=14, max_size=30),
    st.floats(0.0, 8.0),
    st.floats(0.0, 8.0),
    st.floats(-5.0, 10.0),
)
def test_risk_score_stays_in_bounds(
    unemp: list[float], payroll: list[float], y10: float, y3m: float, ffr: float
) -> None:
    end = date(2025, 3, 1)
    series = [
        MacroObservations.create("UNEMPLOYMENT", "monthly", months(date(2020, 1, 1), len(unemp))[-len(unemp) :], unemp),
        MacroObservations.create("NONFARM_PAYROLL", "monthly", months(date(2021, 1, 1), len(payroll)), payroll),
        daily("TREASURY_YIELD", [y10], "10year", end=end),
        daily("TREASURY_YIELD", [y3m], "3month", end=end),
        daily("FEDERAL_FUNDS_RATE", [ffr], end=end),
    ]
    out = macro_overlay(series, end + timedelta(days=2))
    assert -1.0 <= out.risk_score <= 1.0
    assert all(-1.0 <= v <= 1.0 for v in out.components.values() if not math.isnan(v))
    assert sum(out.weights_used.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: MacroObservations.create("GOLD", "daily", [date(2025, 1, 1)], [1.0]), "function"),
        (lambda: MacroObservations.create("CPI", "hourly", [date(2025, 1, 1)], [1.0]), "interval"),
        (lambda: MacroObservations.create("TREASURY_YIELD", "daily", [date(2025, 1, 1)], [1.0]), "maturity"),
        (lambda: MacroObservations.create("CPI", "monthly", [date(2025, 2, 1), date(2025, 1, 1)], [1.0, 2.0]), "dates"),
        (lambda: MacroObservations.create("CPI", "monthly", [date(2025, 1, 1)], [1.0, 2.0]), "values"),
        (lambda: MacroObservations.create("CPI", "monthly", [date(2025, 1, 1)], ["x"]), "values"),
        (lambda: macro_overlay([unemployment()], date(2025, 2, 1)), "series['UNEMPLOYMENT']"),
        (lambda: macro_overlay([unemployment(), unemployment()], AS_OF), "series"),
        (lambda: macro_overlay([unemployment()], AS_OF, lookback_years=0.0), "lookback_years"),
        (lambda: macro_overlay([unemployment()], AS_OF, weights={"gold": 1.0}), "weights"),
        (lambda: macro_overlay([unemployment()], AS_OF, min_history=1), "min_history"),
    ],
)
def test_bad_input_names_the_argument(call: object, argument: str) -> None:
    with pytest.raises(AnalyticsInputError) as info:
        call()  # type: ignore[operator]
    assert info.value.argument == argument


def test_default_weights_sum_to_one() -> None:
    assert sum(DEFAULT_MACRO_WEIGHTS.values()) == pytest.approx(1.0)
