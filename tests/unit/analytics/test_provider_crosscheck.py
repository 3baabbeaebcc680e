"""Cross-checking provider (AlphaVantage) Greeks against ours."""

from __future__ import annotations

import numpy as np
import pytest

from quanticity.analytics import (
    ALPHAVANTAGE_UNITS,
    AnalyticsInputError,
    Disagreement,
    compute_greeks,
    crosscheck_provider_greeks,
)

# AlphaVantage demo rows (shared/reference/alphavantage.md section 4): IBM 0DTE, strike 115.
AV_CALL = {"delta": 0.99259, "gamma": 0.00028, "theta": -0.76550, "vega": 0.00252, "rho": 0.00310}
AV_PUT = {"delta": -0.00064, "gamma": 0.00004, "theta": -0.06043, "vega": 0.00028, "rho": -0.0}
IBM_SPOT = 235.2  # ~ call mark 120.10 + strike 115
ONE_DAY = 1.0 / 365.0


def _provider_view(
    g: object, names: tuple[str, ...] = ("delta", "gamma", "theta", "vega", "rho")
) -> dict[str, np.ndarray]:
    # What a provider with AlphaVantage's conventions would print: unit-scaled, 5 decimals.
    return {n: np.round(getattr(g, n) * ALPHAVANTAGE_UNITS.factor(n), 5) for n in names}


def test_alphavantage_units_reproduce_its_demo_rows_from_its_own_iv() -> None:
    # With AV's own (junk) implied vols and T = one day, our Greeks in AV units land on AV's
    # numbers: theta per calendar day, vega and rho per point.
    for iv, call, av in ((5.98546, True, AV_CALL), (4.39526, False, AV_PUT)):
        g = compute_greeks(IBM_SPOT, 115.0, ONE_DAY, 0.04, 0.0, iv, call)
        result = crosscheck_provider_greeks(av, g, ONE_DAY)
        assert not result.disagrees, result.describe(0)


def test_agreeing_chain_is_not_flagged() -> None:
    strikes = np.linspace(80.0, 120.0, 41)
    expiry = np.full(41, 30 / 365)
    g = compute_greeks(100.0, strikes, expiry, 0.04, 0.01, 0.25, True)
    result = crosscheck_provider_greeks(_provider_view(g), g, expiry)
    assert not result.disagrees.any()
    assert result.describe(3) == "agrees"


def test_junk_deep_itm_0dte_rows_are_flagged_with_reasons() -> None:
    # Ours at a sane 30% vol; AV's rows were computed from 598% and 440% vols.
    expiry = np.array([ONE_DAY, ONE_DAY])
    ours = compute_greeks(IBM_SPOT, 115.0, expiry, 0.04, 0.0, 0.30, np.array([True, False]))
    provider = {n: np.array([AV_CALL[n], AV_PUT[n]]) for n in AV_CALL}
    result = crosscheck_provider_greeks(provider, ours, expiry)
    assert result.disagrees.tolist() == [True, True]
    call_flags = Disagreement(int(result.reasons[0]))
    assert Disagreement.THETA in call_flags
    assert Disagreement.DEEP_ITM in call_flags and Disagreement.SHORT_EXPIRY in call_flags
    assert "theta" in result.describe(0) and "deep ITM" in result.describe(0) and "0DTE" in result.describe(0)


def test_single_wrong_greek_and_missing_values() -> None:
    g = compute_greeks(100.0, np.array([95.0, 100.0, 105.0]), 0.25, 0.03, 0.0, 0.2, True)
    view = _provider_view(g)
    view["vega"] = view["vega"].copy()
    view["vega"][1] *= 1.5
    view["delta"] = view["delta"].copy()
    view["delta"][2] = np.nan
    result = crosscheck_provider_greeks(view, g, 0.25)
    assert result.disagrees.tolist() == [False, True, True]
    assert Disagreement(int(result.reasons[1])) == Disagreement.VEGA
    assert Disagreement(int(result.reasons[2])) == Disagreement.NOT_A_NUMBER


def test_unknown_greek_name_is_rejected() -> None:
    g = compute_greeks(100.0, 100.0, 0.25, 0.0, 0.0, 0.2, True)
    with pytest.raises(AnalyticsInputError):
        crosscheck_provider_greeks({"charm": 0.1}, g, 0.25)
