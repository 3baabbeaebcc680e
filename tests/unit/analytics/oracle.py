"""A 40-digit mpmath oracle for Black-Scholes-Merton prices and Greeks, and how we compare.

The oracle evaluates the reference formulas (shared/reference/analytics.md) on the
*exact* float64 inputs, so any difference is the engine's own error.

Comparison rule (also in docs/module3_formulas.md). For each output ``q`` with oracle
value ``v`` the error is ``|ours - v| / max(|v|, 1e-4 * M_q, 1e-280)`` where ``M_q`` is
the sum of the magnitudes of the terms the formula adds (for example the three terms
of theta, and ``|d2|`` expanded into ``|ln(S/K) + (r-q)T|/sd + sd/2`` for vanna). For
the price and for the single-term Greeks (delta, gamma, vega, rho) ``M_q = |v|``: the
plain relative error. Where terms cancel (theta or charm changing sign, vanna at
``d2 = 0``) no double-precision evaluation can do better than a few ulps of the
largest term; the rule then asks for an absolute error below ``1e-15 * M_q`` when the
target is ``1e-11``. The ``1e-280`` floor stops at the subnormal range, where double
precision itself has fewer digits.
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath

DIGITS = 40
NAMES = ("price", "delta", "gamma", "vega", "theta", "rho", "vanna", "vomma", "charm")


@dataclass(frozen=True)
class OracleRow:
    """Oracle values and the term magnitudes ``M_q`` for one contract."""

    values: dict[str, float]
    scales: dict[str, float]


def oracle_greeks(spot: float, strike: float, t: float, r: float, q: float, vol: float, is_call: bool) -> OracleRow:
    """Price and Greeks in 40-digit arithmetic from the reference formulas."""
    with mpmath.workdps(DIGITS):
        s_, k_, t_, r_, q_, sig = (mpmath.mpf(v) for v in (spot, strike, t, r, q, vol))
        phi = 1 if is_call else -1
        sqrt_t = mpmath.sqrt(t_)
        sd = sig * sqrt_t
        x = mpmath.log(s_ / k_)
        carry = (r_ - q_) * t_
        d1 = (x + carry) / sd + sd / 2
        d2 = d1 - sd
        dq = mpmath.exp(-q_ * t_)
        dr = mpmath.exp(-r_ * t_)
        pdf1 = mpmath.npdf(d1)
        nd1 = mpmath.ncdf(phi * d1)
        nd2 = mpmath.ncdf(phi * d2)
        d2_mag = abs(x + carry) / sd + sd / 2
        d1_mag = d2_mag
        vega = s_ * dq * pdf1 * sqrt_t
        theta_terms = (
            -s_ * dq * pdf1 * sig / (2 * sqrt_t),
            -phi * r_ * k_ * dr * nd2,
            phi * q_ * s_ * dq * nd1,
        )
        charm_inner = carry - x + sd * sd / 2
        charm_terms = (
            phi * q_ * dq * nd1,
            -dq * pdf1 * charm_inner / (2 * t_ * sd),
        )
        charm_inner_mag = abs(carry) + abs(x) + sd * sd / 2
        values = {
            "price": phi * (s_ * dq * nd1 - k_ * dr * nd2),
            "delta": phi * dq * nd1,
            "gamma": dq * pdf1 / (s_ * sd),
            "vega": vega,
            "theta": sum(theta_terms),
            "rho": phi * k_ * t_ * dr * nd2,
            "vanna": -dq * pdf1 * d2 / sig,
            "vomma": vega * d1 * d2 / sig,
            "charm": sum(charm_terms),
        }
        scales = {
            # The engine evaluates the price without cancellation: plain relative error.
            "price": abs(values["price"]),
            "delta": abs(values["delta"]),
            "gamma": values["gamma"],
            "vega": vega,
            "theta": sum(abs(v) for v in theta_terms),
            "rho": abs(values["rho"]),
            "vanna": dq * pdf1 * d2_mag / sig,
            "vomma": vega * d1_mag * d2_mag / sig,
            "charm": abs(charm_terms[0]) + dq * pdf1 * charm_inner_mag / (2 * t_ * sd),
        }
        return OracleRow(
            values={k: float(v) for k, v in values.items()},
            scales={k: float(v) for k, v in scales.items()},
        )


def scaled_error(ours: float, row: OracleRow, name: str) -> float:
    """The comparison error of one output (see the module docstring)."""
    ref = row.values[name]
    denom = max(abs(ref), 1e-4 * row.scales[name], 1e-280)
    return abs(ours - ref) / denom


def oracle_price(spot: float, strike: float, t: float, r: float, q: float, vol: float, is_call: bool) -> float:
    """Option price only, in 40-digit arithmetic (for implied-volatility round trips)."""
    return oracle_greeks(spot, strike, t, r, q, vol, is_call).values["price"]
