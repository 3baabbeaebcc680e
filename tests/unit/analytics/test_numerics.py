"""The vectorisable building blocks: exp, log, expm1, normal tails and quantile, Mills fit."""

from __future__ import annotations

import mpmath
import numpy as np
from numba import njit

from quanticity.analytics._elementary import exp_, expm1_, log_
from quanticity.analytics._normal import MILLS_G, normal_quantile_lower, normal_tail
from quanticity.analytics._normal_fit import mills_coefficients


@njit  # no cache: test modules are imported under varying names
def _apply(kind: int, x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    for i in range(x.size):
        if kind == 0:
            out[i] = exp_(x[i])
        elif kind == 1:
            out[i] = log_(x[i])
        elif kind == 2:
            out[i] = expm1_(x[i])
        elif kind == 3:
            out[i] = normal_tail(x[i])[0]
        else:
            out[i] = normal_quantile_lower(x[i])
    return out


def _max_rel(ours: np.ndarray, exact: list[mpmath.mpf]) -> float:
    return max(float(abs(mpmath.mpf(o) - e) / abs(e)) for o, e in zip(ours, exact, strict=True) if e != 0)


def test_mills_coefficients_are_reproducible_from_their_derivation() -> None:
    assert np.allclose(mills_coefficients(), MILLS_G, rtol=1e-15, atol=0)


def test_elementary_functions_are_accurate_to_a_few_ulps() -> None:
    rng = np.random.default_rng(7)
    mpmath.mp.dps = 40
    x = np.concatenate([rng.uniform(-708.0, 709.0, 400), rng.uniform(-1.0, 1.0, 200)])
    assert _max_rel(_apply(0, x), [mpmath.exp(mpmath.mpf(v)) for v in x]) < 4.5e-16
    y = np.concatenate([np.exp(rng.uniform(-700, 700, 300)), 1.0 + rng.uniform(-0.3, 0.3, 300)])
    assert _max_rel(_apply(1, y), [mpmath.log(mpmath.mpf(v)) for v in y]) < 4.5e-16
    z = np.concatenate([rng.uniform(-1e-8, 1e-8, 100), rng.uniform(-0.6, 0.6, 300), rng.uniform(-30, 30, 100)])
    assert _max_rel(_apply(2, z), [mpmath.expm1(mpmath.mpf(v)) for v in z]) < 6.7e-16


def test_normal_tail_keeps_relative_accuracy_to_the_underflow_edge() -> None:
    mpmath.mp.dps = 40
    d = np.concatenate([np.linspace(-37.5, 37.5, 1501), np.random.default_rng(8).normal(0, 4, 500)])
    exact = [mpmath.ncdf(-abs(mpmath.mpf(v))) for v in d]
    assert _max_rel(_apply(3, d), exact) < 1e-15


def test_normal_quantile_inverts_the_tail() -> None:
    mpmath.mp.dps = 40
    p = np.concatenate([10.0 ** -np.linspace(0.302, 300.0, 300), np.linspace(1e-3, 0.5, 200)])
    z = _apply(4, p)
    # N(z) amplifies a relative error e of z by z^2 e: ~1.4e-13 at p = 1e-300 (z = -37).
    assert _max_rel(np.array([float(mpmath.ncdf(mpmath.mpf(v))) for v in z]), [mpmath.mpf(v) for v in p]) < 3e-13
