"""Hypothesis property tests of the Greeks and the implied-volatility solver."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from quanticity.analytics import IVStatus, compute_greeks, implied_vol
from tests.unit.analytics.chains import MINUTE

spots = st.floats(1.0, 2000.0)
moneyness = st.floats(0.5, 1.5)
expiries = st.floats(math.log(MINUTE), math.log(5.0)).map(math.exp)
vols = st.floats(0.02, 3.0)
rates = st.floats(-0.02, 0.10)
divs = st.floats(0.0, 0.08)


@settings(max_examples=300, deadline=None)
@given(spots, moneyness, expiries, vols, rates, divs, st.booleans())
def test_implied_vol_inverts_price_where_well_conditioned(
    s: float, m: float, t: float, v: float, r: float, q: float, call: bool
) -> None:
    g = compute_greeks(s, s * m, t, r, q, v, call)
    price, vega = float(g.price), float(g.vega)
    vol, status = implied_vol(price, s, s * m, t, r, q, call)
    s_dq, k_dr = s * math.exp(-q * t), s * m * math.exp(-r * t)
    intrinsic = max((s_dq - k_dr) if call else (k_dr - s_dq), 0.0)
    if price > intrinsic * (1 + 1e-13) and price - intrinsic > 1e-250:
        assert status == IVStatus.SOLVED
        if price <= 100.0 * vega:  # well conditioned: see test_implied_vol
            assert abs(float(vol) - v) <= 1e-9


@settings(max_examples=300, deadline=None)
@given(spots, moneyness, expiries, vols, rates, divs, st.booleans())
def test_delta_bounds_and_convexity(s: float, m: float, t: float, v: float, r: float, q: float, call: bool) -> None:
    g = compute_greeks(s, s * m, t, r, q, v, call)
    dq = math.exp(-q * t)
    delta = float(g.delta)
    if call:
        assert 0.0 <= delta <= dq * (1 + 1e-15)
    else:
        assert -dq * (1 + 1e-15) <= delta <= 0.0
    assert float(g.gamma) >= 0.0
    assert float(g.vega) >= 0.0


@settings(max_examples=200, deadline=None)
@given(spots, moneyness, expiries, rates, divs, st.booleans(), st.lists(vols, min_size=2, max_size=12, unique=True))
def test_price_increases_with_vol(
    s: float, m: float, t: float, r: float, q: float, call: bool, sigmas: list[float]
) -> None:
    ordered = np.sort(np.asarray(sigmas))
    price = compute_greeks(s, s * m, t, r, q, ordered, call).price
    assert np.all(np.diff(price) >= 0.0)
