"""Vectorised Black-Scholes-Merton price and eight Greeks with a continuous dividend yield.

One fused numba kernel computes all nine outputs per contract from a single ``log``,
two ``exp`` for the discount factors and one ``exp`` plus one polynomial per normal
tail (see ``_normal.py``). Nothing in the loop calls libm, so LLVM vectorises it with
AVX2, and ``parallel=True`` splits the chain over the cores. The formulas and their
sources are in ``docs/module3_formulas.md``.

Units follow ``shared/reference/analytics.md``: vega and vomma per 1.00 of volatility,
rho per 1.00 of rate, theta and charm per year of calendar time (``dV/dt = -dV/dT``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import prange
from numpy.typing import ArrayLike, NDArray

from quanticity.analytics._elementary import exp_, expm1_, log_
from quanticity.analytics._float_bits import fma
from quanticity.analytics._jit import kernel
from quanticity.analytics._normal import INV_SQRT_2PI, cdf_minus_half, gauss_exp, mills_pair
from quanticity.analytics.inputs import AnalyticsInputError, Bound, prepare_inputs

__all__ = ["GREEK_NAMES", "AnalyticsInputError", "Greeks", "compute_greeks"]

GREEK_NAMES = ("price", "delta", "gamma", "vega", "theta", "rho", "vanna", "vomma", "charm")

_POSITIVE = Bound(low=0.0)
_FINITE = Bound()
_U_MAX = 1e100  # |d| beyond this has N(-|d|) == 0; keeps the Mills polynomial finite


@dataclass(frozen=True, slots=True)
class Greeks:
    """Price and Greeks of European options, each a float64 array of the broadcast shape.

    Attributes:
        price: option value.
        delta: dV/dS.
        gamma: d2V/dS2.
        vega: dV/dsigma, per 1.00 of volatility.
        theta: dV/dt per year (calendar time passing; negative of dV/dT).
        rho: dV/dr, per 1.00 of rate.
        vanna: d2V/dS dsigma.
        vomma: d2V/dsigma2 (volga).
        charm: d(delta)/dt per year.
    """

    price: NDArray[np.float64]
    delta: NDArray[np.float64]
    gamma: NDArray[np.float64]
    vega: NDArray[np.float64]
    theta: NDArray[np.float64]
    rho: NDArray[np.float64]
    vanna: NDArray[np.float64]
    vomma: NDArray[np.float64]
    charm: NDArray[np.float64]

    def as_dict(self) -> dict[str, NDArray[np.float64]]:
        """The nine arrays keyed by name, in ``GREEK_NAMES`` order."""
        return {name: getattr(self, name) for name in GREEK_NAMES}


@kernel(parallel=True)
def _greeks_kernel(
    spot: NDArray[np.float64],
    strike: NDArray[np.float64],
    expiry: NDArray[np.float64],
    rate: NDArray[np.float64],
    div: NDArray[np.float64],
    vol: NDArray[np.float64],
    call: NDArray[np.bool_],
    out: NDArray[np.float64],
) -> None:
    n = out.shape[1]
    for i in prange(n):
        s_ = spot[i]
        k_ = strike[i]
        t_ = expiry[i]
        r_ = rate[i]
        q_ = div[i]
        sig = vol[i]
        phi = 1.0 if call[i] else -1.0

        sqrt_t = math.sqrt(t_)
        sd = sig * sqrt_t  # total standard deviation sigma*sqrt(T)
        # Divisions are the slowest vector instructions here: take three reciprocals and
        # multiply (each costs at most one more rounding; the oracle test bounds the total).
        inv_sd = 1.0 / sd
        inv_s = 1.0 / s_
        inv_sig = sqrt_t * inv_sd
        inv_sqrt_t = sig * inv_sd
        ratio = s_ / k_
        # ln(S/K) = ln(ratio) + ln(1 + e) where S = K*ratio*(1 + e) exactly; S - K*ratio is
        # exact with an FMA. Without it the rounding of S/K alone shifts d by ~1e-16/sd,
        # which at minutes to expiry costs 1e-11 of relative accuracy in the wings.
        x = log_(ratio) + fma(-k_, ratio, s_) * inv_s
        carry = (r_ - q_) * t_
        h = (x + carry) * inv_sd
        d1 = h + 0.5 * sd
        d2 = h - 0.5 * sd

        dq = exp_(-q_ * t_)
        dr = exp_(-r_ * t_)
        s_dq = s_ * dq
        k_dr = k_ * dr
        e1 = gauss_exp(d1)
        e2 = gauss_exp(d2)
        u1 = min(abs(d1), _U_MAX)
        u2 = min(abs(d2), _U_MAX)
        one_small = u1 <= u2
        # R at both points plus R(u_small) - R(u_large), which is exact-ish when d1 and d2
        # lie on the same side of 0 (then u_large - u_small == sd).
        r_s, r_l, r_diff = mills_pair(min(u1, u2), max(u1, u2), sd)
        tail1 = e1 * (r_s if one_small else r_l)  # N(-|d1|)
        tail2 = e2 * (r_l if one_small else r_s)  # N(-|d2|)
        pdf1 = e1 * INV_SQRT_2PI
        # N(phi*d) is the small tail when phi*d < 0, else its complement.
        nd1 = tail1 if phi * d1 < 0.0 else 1.0 - tail1
        nd2 = tail2 if phi * d2 < 0.0 else 1.0 - tail2
        # The price needs care where its two terms cancel (docs/module3_formulas.md, "Price").
        # fwd = S e^{-qT} - K e^{-rT} = K e^{-rT} expm1(ln(F/K)), exact near the money.
        fwd = k_dr * expm1_(x + carry) if abs(x + carry) < 0.5 else s_dq - k_dr
        # d1, d2 on the same side of 0: the out-of-the-money member of the call/put pair
        # (call if h < 0) is the small-|d| term's prefactor times R(u_small) - R(u_large),
        # by S e^{-qT} n(d1) == K e^{-rT} n(d2); the other member follows by parity.
        otm_is_call = h < 0.0
        p_otm = (s_dq if otm_is_call else k_dr) * (e1 if one_small else e2) * r_diff
        p_same_side = p_otm if (phi > 0.0) == otm_is_call else p_otm + phi * fwd
        # d2 < 0 < d1: write N(phi d) = 1/2 + phi (N(d) - 1/2); every term is then small
        # and of one sign except fwd, which is O(sd^2) against O(sd) for the rest.
        a1 = cdf_minus_half(d1, tail1)
        a2 = cdf_minus_half(d2, tail2)
        p_straddle = 0.5 * phi * fwd + s_dq * a1 - k_dr * a2
        straddle = d2 < 0.0 < d1

        vega = s_dq * pdf1 * sqrt_t
        out[0, i] = p_straddle if straddle else p_same_side
        out[1, i] = phi * dq * nd1
        out[2, i] = dq * pdf1 * inv_s * inv_sd
        out[3, i] = vega
        out[4, i] = -0.5 * s_dq * pdf1 * sig * inv_sqrt_t - phi * r_ * k_dr * nd2 + phi * q_ * s_dq * nd1
        out[5, i] = phi * k_ * t_ * dr * nd2
        out[6, i] = -dq * pdf1 * d2 * inv_sig
        out[7, i] = vega * d1 * d2 * inv_sig
        # 2(r-q)T - d2*sigma*sqrt(T) == (r-q)T - ln(S/K) + sd^2/2, without re-multiplying by sd.
        inv_2_t_sd = 0.5 * inv_sqrt_t * inv_sqrt_t * inv_sd  # 1/(2 T sd)
        out[8, i] = phi * q_ * dq * nd1 - dq * pdf1 * ((carry - x) + 0.5 * sd * sd) * inv_2_t_sd


def compute_greeks(
    spot: ArrayLike,
    strike: ArrayLike,
    expiry_years: ArrayLike,
    rate: ArrayLike,
    dividend_yield: ArrayLike,
    vol: ArrayLike,
    is_call: ArrayLike,
) -> Greeks:
    """Black-Scholes-Merton price and Greeks for a chain of European options.

    Arguments broadcast against each other like numpy arrays (a scalar spot, rate and
    dividend yield with per-contract strikes, expiries, vols and flags is the usual call).

    Args:
        spot: underlying price, > 0.
        strike: strike price, > 0.
        expiry_years: time to expiry in years, > 0 (minutes to expiry are fine).
        rate: continuously compounded risk-free rate per year (any finite value).
        dividend_yield: continuous dividend yield per year (any finite value).
        vol: Black-Scholes volatility per sqrt(year), > 0.
        is_call: True for calls, False for puts (bool, or integer 0/1).

    Returns:
        the nine outputs as float64 arrays of the broadcast shape.

    Raises:
        AnalyticsInputError: an argument is non-numeric, NaN, infinite or out of its
            domain, or the shapes do not broadcast; the error names the argument.
    """
    prepared = prepare_inputs(
        {
            "spot": (spot, _POSITIVE),
            "strike": (strike, _POSITIVE),
            "expiry_years": (expiry_years, _POSITIVE),
            "rate": (rate, _FINITE),
            "dividend_yield": (dividend_yield, _FINITE),
            "vol": (vol, _POSITIVE),
        },
        {"is_call": is_call},
    )
    c = prepared.floats
    out = np.empty((len(GREEK_NAMES), prepared.size), dtype=np.float64)
    if prepared.size:
        _greeks_kernel(
            c["spot"],
            c["strike"],
            c["expiry_years"],
            c["rate"],
            c["dividend_yield"],
            c["vol"],
            prepared.flags["is_call"],
            out,
        )
    rows = [out[j].reshape(prepared.shape) for j in range(len(GREEK_NAMES))]
    return Greeks(*rows)
