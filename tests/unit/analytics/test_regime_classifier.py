"""Markov-switching fit and filter, and the regime rule on labelled synthetic regimes."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from quanticity.analytics.inputs import AnalyticsInputError
from quanticity.analytics.regime_classifier import (
    REGIME_LABELS,
    MarkovSwitchingModel,
    RegimeFeatures,
    RegimeRules,
    breadth_from_counts,
    breadth_from_vwap,
    classify_regime,
    fit_markov_switching,
    realized_vol,
)

TRUE_P = np.array([[0.98, 0.02], [0.04, 0.96]])
TRUE_MU = np.array([0.0004, -0.0008])
TRUE_SD = np.array([0.0008, 0.0030])


def simulate(
    n: int,
    seed: int,
    p: NDArray[np.float64] = TRUE_P,
    mu: NDArray[np.float64] = TRUE_MU,
    sd: NDArray[np.float64] = TRUE_SD,
) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    rng = np.random.default_rng(seed)
    states = np.zeros(n, dtype=np.intp)
    for t in range(1, n):
        states[t] = rng.choice(p.shape[0], p=p[states[t - 1]])
    return mu[states] + sd[states] * rng.standard_normal(n), states


def model(mu: list[float], var: list[float], p: list[list[float]], initial: list[float]) -> MarkovSwitchingModel:
    return MarkovSwitchingModel(
        means=np.array(mu), variances=np.array(var), transition=np.array(p), initial=np.array(initial)
    )


def brute_force(m: MarkovSwitchingModel, x: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
    """Likelihood and smoothed marginals by summing over every state path (tiny T only)."""
    k, n = m.n_states, x.size
    dens = np.exp(-0.5 * (x[:, None] - m.means) ** 2 / m.variances) / np.sqrt(2 * np.pi * m.variances)
    total = 0.0
    marg = np.zeros((n, k))
    for path in itertools.product(range(k), repeat=n):
        w = m.initial[path[0]] * dens[0, path[0]]
        for t in range(1, n):
            w *= m.transition[path[t - 1], path[t]] * dens[t, path[t]]
        total += w
        marg[np.arange(n), path] += w
    return math.log(total), marg / total


# --------------------------------------------------------------------------- filter and smoother
def test_filter_likelihood_and_smoother_match_brute_force_over_all_paths() -> None:
    m = model([0.1, -0.3, 0.5], [0.5, 1.5, 3.0], [[0.8, 0.15, 0.05], [0.1, 0.7, 0.2], [0.3, 0.3, 0.4]], [0.5, 0.3, 0.2])
    x = np.array([0.2, -1.1, 2.5, 0.4, -0.2, 1.7])
    loglik, marginals = brute_force(m, x)
    run = m.filter(x, initial=m.initial)
    assert run.log_likelihood == pytest.approx(loglik, rel=1e-12)
    np.testing.assert_allclose(m.smooth(x), marginals, atol=1e-12)
    # The filtered probability at the last step equals the smoothed one there.
    np.testing.assert_allclose(run.filtered[-1], marginals[-1], atol=1e-12)


@settings(max_examples=60)
@given(
    st.lists(st.floats(-5.0, 5.0), min_size=1, max_size=40),
    st.floats(0.05, 0.95),
    st.floats(0.05, 0.95),
    st.floats(0.1, 4.0),
)
def test_filtered_probabilities_stay_on_the_simplex(xs: list[float], p00: float, p11: float, v1: float) -> None:
    m = model([0.0, 0.5], [1.0, v1], [[p00, 1 - p00], [1 - p11, p11]], [0.5, 0.5])
    run = m.filter(np.array(xs))
    assert np.all(run.filtered >= 0.0) and np.all(run.filtered <= 1.0)
    np.testing.assert_allclose(run.filtered.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(run.predicted.sum(axis=1), 1.0, atol=1e-12)
    assert math.isfinite(run.log_likelihood)


def test_filter_survives_observations_far_in_the_tails() -> None:
    # Densities underflow to 0 in double precision at 40 sigma; the log-space shift keeps it finite.
    m = model([0.0, 0.0], [1.0, 4.0], [[0.9, 0.1], [0.1, 0.9]], [0.5, 0.5])
    run = m.filter(np.array([0.0, 80.0, -60.0, 0.1]))
    assert math.isfinite(run.log_likelihood)
    assert run.filtered[1, 1] == pytest.approx(1.0)


# --------------------------------------------------------------------------- EM
def test_em_recovers_known_parameters_and_states() -> None:
    x, states = simulate(3000, seed=11)
    fit = fit_markov_switching(x)
    assert fit.converged
    np.testing.assert_allclose(np.sqrt(fit.variances), TRUE_SD, rtol=0.08)
    np.testing.assert_allclose(fit.means, TRUE_MU, atol=2.5e-4)
    np.testing.assert_allclose(np.diag(fit.transition), np.diag(TRUE_P), atol=0.02)
    smoothed_hit = np.mean((fit.smooth(x)[:, 1] > 0.5) == (states == 1))
    filtered_hit = np.mean((fit.filter(x).filtered[:, 1] > 0.5) == (states == 1))
    assert smoothed_hit > 0.95
    assert filtered_hit > 0.90


def test_confusion_matrix_on_labelled_regimes() -> None:
    x, states = simulate(2500, seed=5)
    fit = fit_markov_switching(x)
    predicted = (fit.filter(x).filtered[:, 1] > 0.5).astype(int)
    confusion = np.zeros((2, 2), dtype=int)
    np.add.at(confusion, (states, predicted), 1)
    recall = np.diag(confusion) / confusion.sum(axis=1)
    assert np.trace(confusion) / confusion.sum() > 0.90
    assert recall.min() > 0.80, confusion  # both regimes, not just the common one


@pytest.mark.parametrize(("seed", "n_states"), [(1, 2), (2, 2), (3, 3), (4, 3)])
def test_em_log_likelihood_never_decreases(seed: int, n_states: int) -> None:
    x, _ = simulate(800, seed=seed)
    fit = fit_markov_switching(x, n_states, max_iter=60, tol=1e-15)
    trace = np.array(fit.log_likelihood_trace)
    assert trace.size == fit.iterations + 1
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))
    assert trace[-1] > trace[0]
    assert fit.log_likelihood == trace[-1]
    assert fit.log_likelihood == pytest.approx(fit.filter(x, initial=fit.initial).log_likelihood, rel=1e-12)


def test_three_states_are_ordered_by_variance() -> None:
    p = np.array([[0.97, 0.02, 0.01], [0.03, 0.95, 0.02], [0.02, 0.05, 0.93]])
    x, states = simulate(4000, 8, p, np.array([0.0, 0.0, -0.001]), np.array([0.0005, 0.0015, 0.0045]))
    fit = fit_markov_switching(x, 3)
    assert np.all(np.diff(fit.variances) > 0.0)
    np.testing.assert_allclose(np.sqrt(fit.variances), [0.0005, 0.0015, 0.0045], rtol=0.15)
    assert np.mean(np.argmax(fit.smooth(x), axis=1) == states) > 0.85


def test_level_feature_is_ordered_by_mean() -> None:
    # A log-realised-vol-like level: two regimes differing in mean, same noise.
    x, states = simulate(1500, 9, TRUE_P, np.array([-1.6, -0.9]), np.array([0.15, 0.15]))
    fit = fit_markov_switching(x, order_by="mean")
    np.testing.assert_allclose(fit.means, [-1.6, -0.9], atol=0.03)
    assert np.mean((fit.smooth(x)[:, 1] > 0.5) == (states == 1)) > 0.97


def test_fit_is_deterministic_and_warm_start_converges_at_once() -> None:
    x, _ = simulate(1000, seed=21)
    a, b = fit_markov_switching(x), fit_markov_switching(x)
    assert a.to_dict() == b.to_dict()
    warm = fit_markov_switching(x, start=a)
    assert warm.iterations <= 2
    assert warm.log_likelihood == pytest.approx(a.log_likelihood, rel=1e-8)


def test_model_round_trips_through_json() -> None:
    x, _ = simulate(600, seed=3)
    fit = fit_markov_switching(x)
    restored = MarkovSwitchingModel.from_dict(json.loads(json.dumps(fit.to_dict())))
    assert restored.to_dict() == fit.to_dict()
    np.testing.assert_array_equal(restored.filter(x).filtered, fit.filter(x).filtered)
    assert not restored.means.flags.writeable


def test_stationary_distribution_and_durations() -> None:
    m = model([0.0, 0.0], [1.0, 2.0], [[0.9, 0.1], [0.3, 0.7]], [1.0, 0.0])
    np.testing.assert_allclose(m.stationary(), [0.75, 0.25])
    np.testing.assert_allclose(m.expected_durations(), [10.0, 1.0 / 0.3])


# --------------------------------------------------------------------------- the regime rule
def calm_and_volatile_fit() -> tuple[MarkovSwitchingModel, NDArray[np.float64]]:
    x, _ = simulate(3000, seed=11)
    return fit_markov_switching(x), x


def test_labels_follow_labelled_synthetic_regimes() -> None:
    fit, _ = calm_and_volatile_fit()
    rng = np.random.default_rng(99)
    calm = rng.normal(0.0, 0.0008, 120)
    trend = rng.normal(0.0006, 0.0008, 120)  # t ~ 0.75 sqrt(30) ~ 4 on a 30-bar window
    wild = rng.normal(0.0, 0.0030, 120)
    crash = rng.normal(-0.002, 0.0035, 120)
    stress = RegimeFeatures(rv_1m=0.65, breadth=-0.9, iv_0dte=0.45, iv_30d=0.32, front_iv=0.40, macro_score=0.4)
    cases = [
        (calm, RegimeFeatures(rv_1m=0.12), "calm_range"),
        (trend, RegimeFeatures(rv_1m=0.12), "calm_trend"),
        (wild, RegimeFeatures(rv_1m=0.45), "volatile_range"),
        (crash, stress, "stressed"),
    ]
    for returns, feats, expected in cases:
        result = classify_regime(returns, feats, model=fit)
        assert result.label == expected, (expected, result.label, result.stress_components, result.features)
        assert 0.5 < result.confidence <= 1.0


def test_stress_needs_confirmation_beyond_the_vol_state() -> None:
    fit, _ = calm_and_volatile_fit()
    wild = np.random.default_rng(4).normal(0.0, 0.003, 200)
    alone = classify_regime(wild, RegimeFeatures(), model=fit)
    assert alone.label.startswith("volatile_") and alone.stress_score < 0.5
    confirmed = classify_regime(wild, RegimeFeatures(rv_5m=0.70, iv_0dte=0.40, iv_30d=0.30), model=fit)
    assert confirmed.label == "stressed"
    assert confirmed.stress_components["term_inversion"] == pytest.approx(1.0)
    assert confirmed.stress_components["realized_vol"] == pytest.approx(1.0)


def test_changed_from_marks_transitions_only() -> None:
    fit, x = calm_and_volatile_fit()
    calm = np.random.default_rng(1).normal(0.0, 0.0008, 100)
    first = classify_regime(calm, model=fit, previous_label="stressed")
    assert first.changed_from == "stressed" and first.changed
    again = classify_regime(calm, model=fit, previous_label=first.label)
    assert again.changed_from is None and not again.changed
    payload = json.loads(json.dumps(again.to_dict()))
    assert payload["label"] == again.label and payload["model"]["schema"] == 1


def test_classify_fits_a_model_when_none_is_given() -> None:
    x, _ = simulate(500, seed=2)
    result = classify_regime(x, n_states=3)
    assert result.model.n_states == 3 and len(result.probabilities) == 3
    assert sum(result.probabilities) == pytest.approx(1.0)
    assert result.label in REGIME_LABELS


@settings(max_examples=40)
@given(st.floats(-1.0, 1.0), st.floats(-1.0, 1.0), st.floats(-1.0, 1.0))
def test_stress_score_is_monotone_in_macro_score_and_breadth(macro: float, extra: float, breadth: float) -> None:
    fit = MarkovSwitchingModel(
        means=np.array([0.0, 0.0]),
        variances=np.array([1e-6, 9e-6]),
        transition=np.array([[0.95, 0.05], [0.05, 0.95]]),
        initial=np.array([0.5, 0.5]),
    )
    returns = np.full(40, 0.002)
    low = classify_regime(returns, RegimeFeatures(macro_score=macro, breadth=breadth), model=fit)
    higher = min(macro + abs(extra), 1.0)
    high = classify_regime(returns, RegimeFeatures(macro_score=higher, breadth=breadth), model=fit)
    worse_breadth = classify_regime(
        returns, RegimeFeatures(macro_score=macro, breadth=max(breadth - abs(extra), -1.0)), model=fit
    )
    assert high.stress_score >= low.stress_score
    assert worse_breadth.stress_score >= low.stress_score
    assert 0.0 <= low.stress_score <= 1.0 and 0.0 <= low.confidence <= 1.0


# --------------------------------------------------------------------------- simple features
def test_realized_vol_by_hand() -> None:
    r = np.array([0.001, -0.002, 0.0015, 0.0])
    by_hand = math.sqrt((1e-6 + 4e-6 + 2.25e-6 + 0.0) / 4 * 252 * 6.5 * 3600 / 60)
    assert realized_vol(r, 60.0) == pytest.approx(by_hand, rel=1e-14)
    assert realized_vol(r, 300.0, seconds_per_year=1.0) == pytest.approx(math.sqrt(7.25e-6 / 4 / 300), rel=1e-14)


def test_breadth_helpers() -> None:
    assert breadth_from_counts(30, 10) == 0.5
    assert breadth_from_counts(0, 0) == 0.0
    assert breadth_from_vwap(15, 20) == 0.5
    assert breadth_from_vwap(0, 20) == -1.0


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: fit_markov_switching(np.zeros(50)), "x"),
        (lambda: fit_markov_switching(np.arange(10.0)), "x"),
        (lambda: fit_markov_switching(np.r_[np.arange(30.0), np.nan]), "x"),
        (lambda: fit_markov_switching(np.arange(30.0), 4), "n_states"),
        (lambda: fit_markov_switching(np.arange(30.0), tol=0.0), "tol"),
        (lambda: fit_markov_switching(np.arange(30.0), order_by="median"), "order_by"),  # type: ignore[arg-type]
        (lambda: realized_vol([], 60.0), "returns"),
        (lambda: realized_vol([0.1], 0.0), "bar_seconds"),
        (lambda: breadth_from_counts(-1, 3), "advancers"),
        (lambda: breadth_from_vwap(5, 0), "total"),
        (lambda: RegimeFeatures(breadth=1.5), "breadth"),
        (lambda: RegimeFeatures(rv_1m=-0.1), "rv_1m"),
        (lambda: RegimeRules(w_state=0.9), "rules"),
        (lambda: model([0.0, 0.0], [1.0, 1.0], [[0.5, 0.6], [0.5, 0.5]], [0.5, 0.5]), "transition"),
        (lambda: model([0.0, 0.0], [1.0, -1.0], [[0.5, 0.5], [0.5, 0.5]], [0.5, 0.5]), "variances"),
        (lambda: MarkovSwitchingModel.from_dict({"schema": 2}), "data"),
        (lambda: classify_regime(np.zeros(30), previous_label="panic"), "previous_label"),  # type: ignore[arg-type]
    ],
)
def test_bad_input_names_the_argument(call: object, argument: str) -> None:
    with pytest.raises(AnalyticsInputError) as info:
        call()  # type: ignore[operator]
    assert info.value.argument == argument
