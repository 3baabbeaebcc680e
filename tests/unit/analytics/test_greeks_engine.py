"""compute_greeks: reference values, parity, finite differences and the mpmath oracle."""

from __future__ import annotations

import numpy as np
import pytest

from quanticity.analytics import GREEK_NAMES, compute_greeks
from tests.unit.analytics.chains import HARD_GRID, MINUTE, Chain, grid_chain, random_chain
from tests.unit.analytics.oracle import oracle_greeks, scaled_error

# Hull's worked example, values from shared/reference/analytics.md (10 significant digits).
HULL_CALL = {
    "price": 2.400527323,
    "delta": 0.5216046611,
    "gamma": 0.06554403935,
    "vega": 12.10547988,
    "theta": -4.305329823,
    "rho": 8.90696195,
    "vanna": 0.1391329682,
    "vomma": -0.2290811179,
    "charm": -0.1967574681,
}
HULL_PUT = {"price": 2.448175441, "delta": -0.4783953389, "theta": -1.852947417, "rho": -9.957518096}


@pytest.mark.parametrize(("is_call", "expected"), [(True, HULL_CALL), (False, HULL_PUT)])
def test_hull_reference_values(is_call: bool, expected: dict[str, float]) -> None:
    g = compute_greeks(49.0, 50.0, 20 / 52, 0.05, 0.0, 0.2, is_call).as_dict()
    for name, value in expected.items():
        assert g[name] == pytest.approx(value, rel=1e-9), name


def test_put_call_parity_and_shared_greeks() -> None:
    chain = random_chain(2000, seed=11)
    args = (chain.spot, chain.strike, chain.expiry, chain.rate, chain.div, chain.vol)
    c = compute_greeks(*args, True)
    p = compute_greeks(*args, False)
    fwd = chain.spot * np.exp(-chain.div * chain.expiry) - chain.strike * np.exp(-chain.rate * chain.expiry)
    scale = np.maximum(chain.spot, chain.strike)
    np.testing.assert_allclose(c.price - p.price, fwd, rtol=0, atol=1e-12 * scale.max())
    np.testing.assert_allclose(c.delta - p.delta, np.exp(-chain.div * chain.expiry), rtol=0, atol=1e-14)
    for name in ("gamma", "vega", "vanna", "vomma"):
        np.testing.assert_allclose(getattr(c, name), getattr(p, name), rtol=1e-13, err_msg=name)


def _central(f, x: np.ndarray, rel: float) -> np.ndarray:  # type: ignore[no-untyped-def]
    h = rel * x
    return (f(x + h) - f(x - h)) / (2 * h)


def test_greeks_match_finite_differences_of_price() -> None:
    # Moderate contracts, where a central difference is accurate to ~1e-8.
    chain = grid_chain([0.8, 0.95, 1.0, 1.05, 1.2], [0.1, 0.5, 2.0], [0.15, 0.3, 0.6], [0.03], [0.0, 0.02])
    s, k, t, r, q, v, c = chain.spot, chain.strike, chain.expiry, chain.rate, chain.div, chain.vol, chain.call
    g = compute_greeks(s, k, t, r, q, v, c)

    def field(name: str, **kw: np.ndarray) -> np.ndarray:
        a = {"spot": s, "strike": k, "expiry_years": t, "rate": r, "dividend_yield": q, "vol": v, "is_call": c}
        a.update(kw)
        return getattr(compute_greeks(**a), name)  # type: ignore[arg-type]

    checks = {
        "delta": _central(lambda x: field("price", spot=x), s, 1e-4),
        "gamma": _central(lambda x: field("delta", spot=x), s, 1e-4),
        "vega": _central(lambda x: field("price", vol=x), v, 1e-4),
        "theta": -_central(lambda x: field("price", expiry_years=x), t, 1e-4),
        "rho": _central(lambda x: field("price", rate=x), r, 1e-3),
        "vanna": _central(lambda x: field("delta", vol=x), v, 1e-4),
        "vomma": _central(lambda x: field("vega", vol=x), v, 1e-4),
        "charm": -_central(lambda x: field("delta", expiry_years=x), t, 1e-4),
    }
    for name, fd in checks.items():
        ours = getattr(g, name)
        scale = np.max(np.abs(ours))
        np.testing.assert_allclose(ours, fd, rtol=2e-6, atol=2e-7 * scale, err_msg=name)


def _oracle_sample(which: str) -> Chain:
    if which == "grid":
        return grid_chain(
            [0.5, 0.9, 0.999, 1.0, 1.001, 1.1, 1.5],
            [MINUTE, 10 * MINUTE, 1 / 365, 0.25, 3.0],
            [0.02, 0.3, 2.0],
            [0.05],
            [0.02],
        )
    return random_chain(180, seed=3)


@pytest.mark.parametrize("which", ["grid", "random"])
def test_all_nine_outputs_match_the_mpmath_oracle_to_1e_11(which: str) -> None:
    # 210 grid contracts (0DTE minutes, wings, vol 2%-200%) and 180 random ones.
    chain = _oracle_sample(which)
    ours = compute_greeks(
        chain.spot, chain.strike, chain.expiry, chain.rate, chain.div, chain.vol, chain.call
    ).as_dict()
    worst = dict.fromkeys(GREEK_NAMES, 0.0)
    for i in range(len(chain)):
        row = oracle_greeks(
            float(chain.spot[i]),
            float(chain.strike[i]),
            float(chain.expiry[i]),
            float(chain.rate[i]),
            float(chain.div[i]),
            float(chain.vol[i]),
            bool(chain.call[i]),
        )
        for name in GREEK_NAMES:
            worst[name] = max(worst[name], scaled_error(float(ours[name][i]), row, name))
    assert all(err <= 1e-11 for err in worst.values()), worst


def test_hard_grid_outputs_are_finite_and_bounded() -> None:
    chain = grid_chain(**HARD_GRID)
    g = compute_greeks(chain.spot, chain.strike, chain.expiry, chain.rate, chain.div, chain.vol, chain.call)
    for name in GREEK_NAMES:
        assert np.all(np.isfinite(getattr(g, name))), name
    dq = np.exp(-chain.div * chain.expiry)
    upper = np.where(chain.call, chain.spot * dq, chain.strike * np.exp(-chain.rate * chain.expiry))
    assert np.all(g.price >= 0.0) and np.all(g.price <= upper * (1 + 1e-15))
    assert np.all(g.gamma >= 0.0) and np.all(g.vega >= 0.0)
    assert np.all(np.abs(g.delta) <= dq * (1 + 1e-15))
