"""Closing-auction projection: features, closed-form ridge, confidence, persistence, backtest."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from quanticity.analytics.inputs import AnalyticsInputError
from quanticity.analytics.moc_predictor import (
    AUCTION_PROXY,
    DESIGN_NAMES,
    FEATURE_NAMES,
    AuctionSeries,
    MocModel,
    backtest_moc,
    fit_moc_model,
    moc_features,
    project_close,
    signed_imbalance,
)

FEATURE_SCALE = np.array([0.004, 0.001, 0.003, 0.3, 0.0005, 0.002, 0.4, 0.2])
ADV = 8.0e7


def design(x: NDArray[np.float64], tau: NDArray[np.float64]) -> NDArray[np.float64]:
    t = tau / 60.0
    return np.column_stack([np.ones_like(t), t, x, x * t[:, None]])


def synthetic(
    n: int, seed: int, coef: NDArray[np.float64], noise_a: float, noise_b: float
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Rows with known raw coefficients and residual variance a + b tau (in ADV units)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, len(FEATURE_NAMES))) * FEATURE_SCALE
    tau = rng.uniform(0.0, 60.0, n)
    noise = rng.standard_normal(n) * np.sqrt(noise_a + noise_b * tau / 60.0)
    return x, tau, design(x, tau) @ coef + noise


def true_coefficients(seed: int = 0) -> NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    base = rng.uniform(-1.0, 1.0, len(DESIGN_NAMES))
    # Scale so every term contributes ~1e-3 ADV (features differ by orders of magnitude).
    scale = np.concatenate([[1.0, 1.0], FEATURE_SCALE, FEATURE_SCALE])
    return np.asarray(base * 1e-3 / scale, dtype=np.float64)


def series() -> AuctionSeries:
    return AuctionSeries.create(
        minutes_to_close=[10.0, 5.0, 1.0],
        auction_imbalance=[1e5, 2e5, 3e5],
        regulatory_imbalance=[math.nan, math.nan, 4e5],
        auction_volume=[1e6, 1.2e6, 1.5e6],
        auction_price=[500.2, 500.3, math.nan],
        last_price=500.0,
        vwap=499.0,
        cum_volume=[5e7, 6e7, 7e7],
        expected_cum_volume=6e7,
        bid_depth=[1000.0, 2000.0, 0.0],
        ask_depth=[3000.0, 2000.0, 0.0],
    )


# --------------------------------------------------------------------------- features
def test_features_by_hand() -> None:
    f = moc_features(series(), ADV)
    assert f.shape == (3, len(FEATURE_NAMES))
    np.testing.assert_allclose(f[:, 0], [1e5 / ADV, 2e5 / ADV, 3e5 / ADV])
    # 5 minutes back: none for the first row, row 0 for both later rows (tau 10 >= 5 + 5, 10 >= 1 + 5).
    np.testing.assert_allclose(f[:, 1], [0.0, 1e5 / ADV, 2e5 / ADV])
    np.testing.assert_allclose(f[:, 2], [0.0, 0.0, 4e5 / ADV])
    np.testing.assert_allclose(f[:, 3], [1e5 / 1.1e6, 2e5 / 1.4e6, 3e5 / 1.8e6])
    np.testing.assert_allclose(f[:, 4], [0.2 / 500, 0.3 / 500, 0.0])
    np.testing.assert_allclose(f[:, 5], 1.0 / 499.0)
    np.testing.assert_allclose(f[:, 6], [-0.5, 0.0, 0.0])
    np.testing.assert_allclose(f[:, 7], [5 / 6 - 1, 0.0, 7 / 6 - 1])


def test_signed_imbalance_from_the_indicative_price() -> None:
    out = signed_imbalance([1000.0, -2000.0, 500.0, 700.0], [101.0, 99.0, math.nan, 100.0], 100.0)
    np.testing.assert_array_equal(out, [1000.0, -2000.0, 0.0, 0.0])


# --------------------------------------------------------------------------- ridge
def test_ridge_recovers_known_coefficients() -> None:
    coef = true_coefficients()
    x, tau, y = synthetic(6000, seed=1, coef=coef, noise_a=1e-14, noise_b=0.0)
    model = fit_moc_model(x, tau, ADV, y * ADV, 0.5 * y, ridge=1e-10)
    raw = np.array(list(model.raw_coefficients("imbalance").values()))
    np.testing.assert_allclose(raw, coef, rtol=1e-3, atol=1e-3 * np.abs(coef).min())
    np.testing.assert_allclose(list(model.raw_coefficients("move").values()), 0.5 * coef, rtol=1e-3, atol=1e-9)
    assert model.n_train == 6000 and list(model.raw_coefficients("move")) == list(DESIGN_NAMES)


def test_ridge_is_the_closed_form_minimiser_and_shrinks() -> None:
    coef = true_coefficients(2)
    x, tau, y = synthetic(400, seed=3, coef=coef, noise_a=1e-6, noise_b=4e-6)
    norms = []
    for lam in (1e-4, 1e-2, 1.0):
        model = fit_moc_model(x, tau, ADV, y * ADV, y, ridge=lam)
        d = design(x, tau)
        z = (d[:, 1:] - d[:, 1:].mean(axis=0)) / d[:, 1:].std(axis=0)
        n = z.shape[0]
        # Independent solve: least squares on the augmented system [Z/sqrt(n); sqrt(lam) I].
        a = np.vstack([z / math.sqrt(n), math.sqrt(lam) * np.eye(z.shape[1])])
        b = np.concatenate([(y - y.mean()) / math.sqrt(n), np.zeros(z.shape[1])])
        expected = np.linalg.lstsq(a, b, rcond=None)[0]
        np.testing.assert_allclose(model.coef_imbalance[1:], expected, rtol=1e-8, atol=1e-14)
        assert model.coef_imbalance[0] == pytest.approx(y.mean())
        norms.append(float(np.linalg.norm(model.coef_imbalance[1:])))
    assert norms[0] > norms[1] > norms[2]


def test_residual_variance_line_and_confidence_rise_toward_the_close() -> None:
    coef = true_coefficients(4)
    coef[1] = 0.0
    coef[2 + len(FEATURE_NAMES) :] = 0.0  # no interactions: the projection itself does not depend on tau
    x, tau, y = synthetic(20000, seed=5, coef=coef, noise_a=1e-6, noise_b=2e-5)
    model = fit_moc_model(x, tau, ADV, y * ADV, y, ridge=1e-8)
    a, b = model.resid_imbalance
    assert a == pytest.approx(1e-6, rel=0.3) and b == pytest.approx(2e-5, rel=0.1)
    row = np.tile(x[:1], (5, 1))
    p = model.predict(row, [59.0, 45.0, 30.0, 10.0, 1.0])
    assert np.all(np.diff(p.imbalance_sigma_adv) < 0.0)
    assert np.all(np.diff(p.confidence) > 0.0), p.confidence
    np.testing.assert_allclose(p.confidence, 2.0 * p.hit_probability - 1.0)


@settings(max_examples=50)
@given(
    st.lists(st.floats(-0.05, 0.05), min_size=len(FEATURE_NAMES), max_size=len(FEATURE_NAMES)),
    st.floats(0.0, 60.0),
)
def test_confidence_is_a_probability(row: list[float], tau: float) -> None:
    p = fitted_model().predict(np.array([row]), [tau])
    assert 0.0 <= p.confidence[0] <= 1.0 and 0.5 <= p.hit_probability[0] <= 1.0
    assert p.imbalance_sigma_adv[0] > 0.0 and p.move_sigma[0] > 0.0


_MODEL: list[MocModel] = []


def fitted_model() -> MocModel:
    if not _MODEL:
        x, tau, y = synthetic(2000, seed=6, coef=true_coefficients(6), noise_a=1e-6, noise_b=1e-5)
        _MODEL.append(fit_moc_model(x, tau, ADV, y * ADV, 0.1 * y))
    return _MODEL[0]


# --------------------------------------------------------------------------- persistence and projection
def test_model_round_trips_through_json() -> None:
    model = fitted_model()
    restored = MocModel.from_dict(json.loads(json.dumps(model.to_dict())))
    x = moc_features(series(), ADV)
    a, b = model.predict(x, [10.0, 5.0, 1.0]), restored.predict(x, [10.0, 5.0, 1.0])
    np.testing.assert_array_equal(a.imbalance_adv, b.imbalance_adv)
    np.testing.assert_array_equal(a.confidence, b.confidence)
    assert restored.resid_move == model.resid_move


def test_project_close_for_an_etf_and_for_spx_through_its_proxy() -> None:
    model = fitted_model()
    s = series()
    spy = project_close(model, s, ADV, symbol="SPY")
    p = model.predict(moc_features(s, ADV)[-1:], [1.0])
    assert spy.minutes_to_close == 1.0
    assert spy.imbalance_shares == pytest.approx(float(p.imbalance_adv[0]) * ADV)
    assert spy.side == ("buy" if spy.imbalance_shares > 0 else "sell")
    assert spy.projected_close == pytest.approx(500.0 * (1.0 + spy.close_move))
    assert spy.confidence == pytest.approx(float(p.confidence[0]))
    assert AUCTION_PROXY["SPX"] == "SPY"
    spx = project_close(model, s, ADV, symbol="SPX", reference_price=6000.0)
    assert spx.close_move == spy.close_move
    assert spx.projected_close == pytest.approx(6000.0 * (1.0 + spy.close_move))


# --------------------------------------------------------------------------- backtest
def test_backtest_of_an_exact_model() -> None:
    coef = true_coefficients(7)
    x, tau, y = synthetic(500, seed=8, coef=coef, noise_a=0.0, noise_b=0.0)
    model = fit_moc_model(x, tau, ADV, y * ADV, y, ridge=1e-12)
    bt = backtest_moc(model, x, tau, ADV, y * ADV, y)
    assert bt.n == 500
    assert bt.direction_hit_rate == 1.0 and bt.move_direction_hit_rate == 1.0
    assert bt.mae_imbalance_adv < 1e-9 and bt.mae_imbalance_shares < 1e-9 * ADV
    assert sum(b.count for b in bt.calibration) == 500


def test_backtest_calibration_of_a_well_specified_model() -> None:
    coef = true_coefficients(9)
    train = synthetic(20000, seed=10, coef=coef, noise_a=2e-6, noise_b=2e-5)
    test = synthetic(20000, seed=11, coef=coef, noise_a=2e-6, noise_b=2e-5)
    model = fit_moc_model(train[0], train[1], ADV, train[2] * ADV, train[2], ridge=1e-8)
    x, tau, y = test
    bt = backtest_moc(model, x, tau, ADV, y * ADV, y, n_buckets=4)
    assert 0.5 < bt.direction_hit_rate < 1.0
    for bucket in bt.calibration:
        assert bucket.low <= bucket.mean_confidence < bucket.high or bucket.count == 0
        if bucket.count > 500:
            assert bucket.realised_hit_rate == pytest.approx(bucket.predicted_hit_rate, abs=0.03), bucket
    assert bt.calibration_error < 0.02
    # Realised hit rates rise with confidence.
    rates = [b.realised_hit_rate for b in bt.calibration if b.count > 500]
    assert rates == sorted(rates)
    assert json.loads(json.dumps(bt.to_dict()))["n"] == 20000
    # A model with the sign flipped is right as often as this one is wrong.
    flipped = MocModel.from_dict({**model.to_dict(), "coef_imbalance": (-model.coef_imbalance).tolist()})
    assert backtest_moc(flipped, x, tau, ADV, y * ADV, y).direction_hit_rate == pytest.approx(
        1.0 - bt.direction_hit_rate, abs=1e-12
    )


# --------------------------------------------------------------------------- errors
def _series(**changes: object) -> AuctionSeries:
    kwargs: dict[str, object] = {
        "minutes_to_close": [10.0, 5.0],
        "auction_imbalance": 1e5,
        "regulatory_imbalance": math.nan,
        "auction_volume": 1e6,
        "auction_price": 500.0,
        "last_price": 500.0,
        "vwap": 500.0,
        "cum_volume": 1e7,
        "expected_cum_volume": 1e7,
        "bid_depth": 100.0,
        "ask_depth": 100.0,
    }
    kwargs.update(changes)
    return AuctionSeries.create(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: _series(minutes_to_close=[5.0, 10.0]), "minutes_to_close"),
        (lambda: _series(minutes_to_close=[]), "minutes_to_close"),
        (lambda: _series(last_price=[500.0, 0.0]), "last_price"),
        (lambda: _series(cum_volume=[1.0, 2.0, 3.0]), "cum_volume"),
        (lambda: _series(auction_imbalance=math.inf), "auction_imbalance"),
        (lambda: moc_features(_series(), 0.0), "adv"),
        (lambda: fit_moc_model(np.zeros((30, 7)), np.zeros(30), ADV, np.zeros(30), np.zeros(30)), "features"),
        (lambda: fit_moc_model(np.zeros((5, 8)), np.zeros(5), ADV, np.zeros(5), np.zeros(5)), "features"),
        (lambda: fit_moc_model(np.zeros((30, 8)), np.zeros(29), ADV, np.zeros(30), np.zeros(30)), "minutes_to_close"),
        (lambda: fit_moc_model(np.zeros((30, 8)), np.zeros(30), ADV, np.zeros(29), np.zeros(30)), "final_imbalance"),
        (lambda: fit_moc_model(np.zeros((30, 8)), np.zeros(30), ADV, np.zeros(30), np.zeros(30), ridge=0.0), "ridge"),
        (lambda: MocModel.from_dict({"schema": 1, "design": ["x"]}), "data"),
        (lambda: backtest_moc(fitted_model(), np.zeros((3, 8)), np.ones(3), ADV, 1.0, 1.0, n_buckets=0), "n_buckets"),
        (lambda: project_close(fitted_model(), _series(), ADV, symbol="SPX", reference_price=-1.0), "reference_price"),
    ],
)
def test_bad_input_names_the_argument(call: object, argument: str) -> None:
    with pytest.raises(AnalyticsInputError) as info:
        call()  # type: ignore[operator]
    assert info.value.argument == argument
