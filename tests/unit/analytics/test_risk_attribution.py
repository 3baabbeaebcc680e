"""PCA factors, exposures, betas, EWMA covariance and the VaR decomposition."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from quanticity.analytics.inputs import AnalyticsInputError
from quanticity.analytics.risk_attribution import (
    betas,
    estimate_covariance,
    ewma_covariance,
    factor_exposures,
    pca_factors,
    risk_attribution,
    var_decomposition,
)

SYMBOLS = ("SPY", "QQQ", "IWM", "AAPL", "MSFT", "XOM")


def two_factor_returns(t: int, seed: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Returns from a known model r = F B' + e with orthonormal loadings B (N x 2)."""
    rng = np.random.default_rng(seed)
    b = np.linalg.qr(rng.standard_normal((len(SYMBOLS), 2)))[0]
    f = rng.standard_normal((t, 2)) * np.array([0.004, 0.002])
    e = rng.standard_normal((t, len(SYMBOLS))) * 0.0002
    return f @ b.T + e, b


# --------------------------------------------------------------------------- PCA
def test_pca_recovers_the_loadings_of_a_known_two_factor_model_up_to_sign() -> None:
    r, b = two_factor_returns(5000, seed=3)
    pca = pca_factors(r, symbols=SYMBOLS, n_factors=2)
    cosines = np.abs(pca.loadings.T @ b)
    assert cosines[0, 0] > 0.999 and cosines[1, 1] > 0.999
    # Factor variances 16e-6 and 4e-6 against 6 x 4e-8 of noise.
    assert pca.explained_variance_ratio[:2].sum() > 0.98
    assert pca.explained_variance_ratio[0] == pytest.approx(0.8, abs=0.03)
    np.testing.assert_allclose(pca.eigenvalues[2:], 4e-8, rtol=0.15)
    # What the factors leave of each asset's noise: the part outside span(B).
    np.testing.assert_allclose(pca.idiosyncratic_variance, 4e-8 * (1.0 - (b**2).sum(axis=1)), rtol=0.2)


def test_sign_convention_and_orthonormal_loadings() -> None:
    r, _ = two_factor_returns(1000, seed=4)
    pca = pca_factors(r, n_factors=4)
    assert np.all(pca.loadings.sum(axis=0) > 0.0)
    np.testing.assert_allclose(pca.eigenvectors.T @ pca.eigenvectors, np.eye(len(SYMBOLS)), atol=1e-12)
    # Negating every return leaves the covariance, hence the oriented loadings, unchanged.
    np.testing.assert_allclose(pca_factors(-r, n_factors=4).loadings, pca.loadings, atol=1e-12)
    # Factor returns are the standardised, demeaned returns projected on the loadings.
    np.testing.assert_allclose(pca.factor_returns, (r - r.mean(axis=0)) @ pca.loadings, atol=1e-15)
    np.testing.assert_allclose(pca.factor_returns.var(axis=0, ddof=1), pca.eigenvalues[:4], rtol=1e-10)


def test_market_factor_has_positive_loadings() -> None:
    rng = np.random.default_rng(8)
    market = rng.normal(0.0, 0.01, 800)
    r = market[:, None] * np.array([1.0, 1.2, 0.9, 1.1]) + rng.normal(0.0, 0.002, (800, 4))
    pca = pca_factors(r, n_factors=1)
    assert np.all(pca.loadings[:, 0] > 0.0)


def test_correlation_pca_ignores_the_scale_of_each_asset() -> None:
    r, _ = two_factor_returns(800, seed=5)
    scaled = r * np.array([1.0, 10.0, 0.1, 3.0, 1.0, 5.0])
    a = pca_factors(r, use_correlation=True, n_factors=3)
    b = pca_factors(scaled, use_correlation=True, n_factors=3)
    np.testing.assert_allclose(a.loadings, b.loadings, atol=1e-10)
    np.testing.assert_allclose(a.eigenvalues, b.eigenvalues, rtol=1e-10)
    assert a.eigenvalues.sum() == pytest.approx(len(SYMBOLS))
    # Idiosyncratic variance comes back in each asset's own units.
    np.testing.assert_allclose(b.idiosyncratic_variance, a.idiosyncratic_variance * np.array([1, 100, 0.01, 9, 1, 25]))


def test_exposures_split_the_portfolio_variance_exactly() -> None:
    r, _ = two_factor_returns(600, seed=6)
    w = np.array([1e5, -5e4, 2e4, 3e4, 0.0, -1e4])
    for k in (1, 2, 6):
        for corr in (False, True):
            pca = pca_factors(r, n_factors=k, use_correlation=corr)
            exp = factor_exposures(pca, w)
            assert exp.factor_variance.sum() + exp.residual_variance == pytest.approx(exp.total_variance, rel=1e-10)
            assert exp.total_variance == pytest.approx(w @ np.cov(r, rowvar=False) @ w, rel=1e-12)
            if k == 6:
                assert exp.residual_variance == pytest.approx(0.0, abs=1e-12 * exp.total_variance)
    exp = factor_exposures(pca_factors(r, n_factors=2), w)
    np.testing.assert_allclose(exp.factor_exposures, pca_factors(r, n_factors=2).loadings.T @ w)


# --------------------------------------------------------------------------- covariance and betas
def test_ewma_covariance_by_hand_and_by_recursion() -> None:
    r = np.array([[0.01, 0.02], [-0.02, 0.01], [0.03, -0.01]])
    lam = 0.94
    w = np.array([lam**2, lam, 1.0]) * (1 - lam) / (1 - lam**3)
    by_hand = sum(w[i] * np.outer(r[i], r[i]) for i in range(3))
    np.testing.assert_allclose(ewma_covariance(r, lam), by_hand, rtol=1e-14)
    # RiskMetrics recursion from zero, rescaled by the finite-sample normaliser.
    s = np.zeros((2, 2))
    for row in r:
        s = lam * s + (1 - lam) * np.outer(row, row)
    np.testing.assert_allclose(ewma_covariance(r, lam), s / (1 - lam**3), rtol=1e-14)


def test_long_ewma_forgets_old_volatility() -> None:
    rng = np.random.default_rng(2)
    r = np.vstack([rng.normal(0, 0.03, (500, 2)), rng.normal(0, 0.01, (300, 2))])
    ewma = ewma_covariance(r)
    sample = estimate_covariance(r)
    assert ewma[0, 0] == pytest.approx(1e-4, rel=0.25)
    assert sample[0, 0] > 3e-4


def test_beta_of_a_constructed_asset() -> None:
    rng = np.random.default_rng(12)
    spy = rng.normal(0.0, 0.01, 4000)
    r = np.column_stack([spy, 1.5 * spy + rng.normal(0.0, 0.005, 4000), -0.4 * spy + rng.normal(0, 0.01, 4000)])
    b = betas(estimate_covariance(r), 0)
    assert b[0] == 1.0
    assert b[1] == pytest.approx(1.5, abs=0.03)
    assert b[2] == pytest.approx(-0.4, abs=0.04)


# --------------------------------------------------------------------------- VaR
def test_var_two_assets_by_hand() -> None:
    cov = np.array([[0.04, 0.006], [0.006, 0.01]])
    w = np.array([100.0, -50.0])
    out = var_decomposition(cov, w, confidence=0.95, horizon=4.0)
    sigma = math.sqrt(100**2 * 0.04 + 50**2 * 0.01 - 2 * 100 * 50 * 0.006)
    z = NormalDist().inv_cdf(0.95)
    assert out.portfolio_sigma == pytest.approx(sigma)
    assert out.var == pytest.approx(z * sigma * 2.0)
    assert out.marginal[0] == pytest.approx(z * 2.0 * (100 * 0.04 - 50 * 0.006) / sigma)
    assert out.component.sum() == pytest.approx(out.var)
    assert out.percent.sum() == pytest.approx(1.0)


@settings(max_examples=100)
@given(
    st.integers(1, 8).flatmap(
        lambda n: st.tuples(
            st.lists(st.floats(-2.0, 2.0), min_size=n * (n + 2), max_size=n * (n + 2)),
            st.lists(st.floats(-1e6, 1e6), min_size=n, max_size=n),
        )
    ),
    st.floats(0.6, 0.999),
)
def test_component_var_sums_to_total_var(data: tuple[list[float], list[float]], confidence: float) -> None:
    flat, weights = data
    n = len(weights)
    a = np.array(flat).reshape(n + 2, n)
    cov = a.T @ a  # positive semi-definite by construction
    w = np.array(weights)
    out = var_decomposition(cov, w, confidence=confidence)
    # Rounding bound: the sum of the magnitudes of the terms of w' Sigma w.
    scale = NormalDist().inv_cdf(confidence) * math.sqrt(float(np.abs(w) @ np.abs(cov) @ np.abs(w)))
    assert out.component.sum() == pytest.approx(out.var, abs=1e-9 * scale + 1e-300)
    assert out.var >= 0.0


def test_flat_book_has_zero_var_and_no_percentages() -> None:
    out = var_decomposition(np.eye(3), np.zeros(3))
    assert out.var == 0.0 and np.all(out.component == 0.0) and np.all(np.isnan(out.percent))


# --------------------------------------------------------------------------- the whole attribution
def test_risk_attribution_on_two_windows_and_its_table() -> None:
    r, _ = two_factor_returns(780, seed=9)
    hourly = r.reshape(-1, 12, len(SYMBOLS)).sum(axis=1)
    w = np.array([2e5, -1e5, 5e4, 0.0, 3e4, -2e4])
    out = risk_attribution({"5m": r, "60m": hourly}, SYMBOLS, w, n_factors=2, method="ewma")
    assert set(out.windows) == {"5m", "60m"}
    five = out.windows["5m"]
    assert five.n_observations == 780 and out.windows["60m"].n_observations == 65
    assert five.betas[0] == 1.0
    assert five.beta_exposure == pytest.approx(float(w @ five.betas))
    np.testing.assert_allclose(five.pca.covariance, ewma_covariance(r))
    assert five.var.component.sum() == pytest.approx(five.var.var)
    rows = out.to_table()
    keys = {"window", "kind", "symbol", "factor", "metric", "value"}
    assert all(set(row) == keys for row in rows)
    # per window: 7 asset metrics x 6 + 6 x 2 loadings + 4 factor metrics x 2 + 8 portfolio metrics
    assert len(rows) == 2 * (42 + 12 + 8 + 8)
    var_row = next(x for x in rows if x["window"] == "60m" and x["metric"] == "var")
    assert var_row["value"] == pytest.approx(out.windows["60m"].var.var)
    loading = next(x for x in rows if x["kind"] == "loading" and x["symbol"] == "IWM" and x["factor"] == "pc2")
    assert loading["value"] == pytest.approx(five.pca.loadings[2, 1])


def test_no_benchmark_gives_nan_betas() -> None:
    r, _ = two_factor_returns(100, seed=1)
    out = risk_attribution({"5m": r}, SYMBOLS, np.ones(6), benchmark=None)
    assert np.all(np.isnan(out.windows["5m"].betas)) and math.isnan(out.windows["5m"].beta_exposure)


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: pca_factors(np.ones((1, 3))), "returns"),
        (lambda: pca_factors(np.ones(5)), "returns"),
        (lambda: pca_factors(np.array([[0.1, np.nan], [0.2, 0.3]])), "returns"),
        (lambda: pca_factors(np.c_[np.zeros(5), np.arange(5.0)], use_correlation=True), "returns"),
        (lambda: pca_factors(np.eye(3), n_factors=0), "n_factors"),
        (lambda: pca_factors(np.eye(3), symbols=["A", "A", "B"]), "symbols"),
        (lambda: ewma_covariance(np.eye(3), lam=1.0), "lam"),
        (lambda: estimate_covariance(np.eye(3), method="garch"), "method"),  # type: ignore[arg-type]
        (lambda: betas(np.eye(2), 2), "benchmark_index"),
        (lambda: var_decomposition(np.eye(2), [1.0, 2.0, 3.0]), "weights"),
        (lambda: var_decomposition(np.ones((2, 3)), [1.0, 2.0]), "covariance"),
        (lambda: var_decomposition(-np.eye(2), [1.0, 2.0]), "covariance"),
        (lambda: var_decomposition(np.eye(2), [1.0, 2.0], confidence=0.4), "confidence"),
        (lambda: risk_attribution({}, SYMBOLS, np.ones(6)), "windows"),
        (lambda: risk_attribution({"5m": np.eye(6)}, ["A", "B", "C", "D", "E", "F"], np.ones(6)), "benchmark"),
        (lambda: risk_attribution({"5m": np.ones((4, 5))}, SYMBOLS, np.ones(6)), "windows['5m']"),
    ],
)
def test_bad_input_names_the_argument(call: object, argument: str) -> None:
    with pytest.raises(AnalyticsInputError) as info:
        call()  # type: ignore[operator]
    assert info.value.argument == argument
