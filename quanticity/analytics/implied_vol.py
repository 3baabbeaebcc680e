"""Implied Black-Scholes-Merton volatility for whole option chains, with a status per quote.

Each quote is mapped to an out-of-the-money call in Jäckel's normalised coordinates
(``_black_normalised.py``) and solved there by safeguarded Halley (Householder order
2) iterations: a closed-form asymptotic first guess, an objective chosen by region so
that it is nearly linear (``ln b`` below the inflection point ``s_c = sqrt(2|x|)``,
``-ln(b_max - b)`` above it), and a bracket that every evaluation narrows, with a
bisection step whenever a Halley step would leave it. The method, its sources and its
accuracy are in ``docs/module3_formulas.md``.

A quote without a solution gets an explicit ``IVStatus`` and a NaN volatility; a
solvable quote always gets ``SOLVED`` and a finite volatility.
"""

from __future__ import annotations

import math
from enum import IntEnum

import numpy as np
from numba import prange
from numpy.typing import ArrayLike, NDArray

from quanticity.analytics._elementary import exp_, expm1_, log_
from quanticity.analytics._float_bits import fma
from quanticity.analytics._iv_solver import ACCEPT_STEP, halley_update, initial_state, polish
from quanticity.analytics._jit import kernel
from quanticity.analytics.inputs import AnalyticsInputError, Bound, prepare_inputs

__all__ = ["AnalyticsInputError", "IVStatus", "implied_vol"]


class IVStatus(IntEnum):
    """Outcome of one implied-volatility solve.

    The bounds are those of a European option under continuous dividends:
    discounted forward intrinsic ``max(phi (S e^{-qT} - K e^{-rT}), 0)`` below, and
    ``S e^{-qT}`` (call) or ``K e^{-rT}`` (put) above. Only ``SOLVED`` carries a volatility.
    """

    SOLVED = 0
    BELOW_INTRINSIC = 1  # price < discounted intrinsic: no volatility reproduces it
    ABOVE_UPPER_BOUND = 2  # price >= S e^{-qT} (call) or K e^{-rT} (put)
    NO_TIME_VALUE = 3  # price == intrinsic in double precision, or expiry_years == 0
    MISSING_PRICE = 4  # the price is NaN (no quote)


_SOLVED = int(IVStatus.SOLVED)
_BELOW = int(IVStatus.BELOW_INTRINSIC)
_ABOVE = int(IVStatus.ABOVE_UPPER_BOUND)
_NO_TIME = int(IVStatus.NO_TIME_VALUE)
_MISSING = int(IVStatus.MISSING_PRICE)

# Vectorised Halley rounds before the scalar polish. From the first guesses the second
# step is already cubic, so after three rounds almost every quote has converged.
_VECTOR_ROUNDS = 3
# Within this many ulps of intrinsic a price is "no time value" rather than "below
# intrinsic": the intrinsic value itself carries a rounding error of that order.
_INTRINSIC_ULPS = 4.0 * 2.220446049250313e-16
# Work rows of the kernel (one column per quote).
_X, _EX, _EMX, _HALF_SINH, _LOWER, _TARGET, _S, _LO, _HI, _STEP = range(10)
_WORK_ROWS = 10
_CHUNK = 1024  # quotes per work unit: 10 rows x 8 KiB stay in L2

_POSITIVE = Bound(low=0.0)
_NON_NEGATIVE = Bound(low=0.0, low_inclusive=True)
_FINITE = Bound()
_PRICE = Bound(low=-math.inf, low_inclusive=True, allow_nan=True, finite=False)  # any value: bounds are statuses


@kernel()
def _iv_chunk(
    price: NDArray[np.float64],
    spot: NDArray[np.float64],
    strike: NDArray[np.float64],
    expiry: NDArray[np.float64],
    rate: NDArray[np.float64],
    div: NDArray[np.float64],
    call: NDArray[np.bool_],
    vol_out: NDArray[np.float64],
    status_out: NDArray[np.int8],
    work: NDArray[np.float64],
) -> None:
    # Every loop runs over range(m) on arrays that start at the chunk: with a non-negative
    # index numba drops its wrap-around check and LLVM vectorises the loop.
    m = vol_out.shape[0]
    # Phase 1 (branch-free, vectorised): status, normalisation, first guess.
    for i in range(m):
        p = price[i]
        s_ = spot[i]
        k_ = strike[i]
        t_ = expiry[i]
        r_ = rate[i]
        q_ = div[i]
        phi = 1.0 if call[i] else -1.0

        s_dq = s_ * exp_(-q_ * t_)
        k_dr = k_ * exp_(-r_ * t_)
        ratio = s_ / k_
        # ln(F/K), with the rounding of S/K recovered by an FMA (see greeks_engine).
        y = log_(ratio) + fma(-k_, ratio, s_) / s_ + (r_ - q_) * t_
        fwd = k_dr * expm1_(y)  # S e^{-qT} - K e^{-rT} without cancellation
        intrinsic = max(phi * fwd, 0.0)
        upper = s_dq if phi > 0.0 else k_dr
        # Map to the out-of-the-money call of Jäckel's normalisation, x = -|ln(F/K)|.
        otm_is_call = y <= 0.0
        time_value = p if (phi > 0.0) == otm_is_call else p - intrinsic
        otm_upper = s_dq if otm_is_call else k_dr
        norm = math.sqrt(s_dq * k_dr)
        beta = time_value / norm
        gap = (otm_upper - time_value) / norm

        status = _SOLVED
        status = _NO_TIME if (t_ == 0.0 or time_value <= 0.0) else status
        status = _ABOVE if (p >= upper or gap <= 0.0) else status
        status = _BELOW if p < intrinsic * (1.0 - _INTRINSIC_ULPS) else status
        status = _MISSING if p != p else status
        solvable = status == _SOLVED
        # Unsolvable quotes carry a harmless dummy problem through the vectorised rounds.
        x = -abs(y) if solvable else -1.0
        beta = beta if solvable else 0.25
        gap = gap if solvable else 0.25
        lower, target, s, lo, hi, ex, emx, half_sinh = initial_state(x, beta, gap)
        work[_X, i] = x
        work[_EX, i] = ex
        work[_EMX, i] = emx
        work[_HALF_SINH, i] = half_sinh
        work[_LOWER, i] = lower
        work[_TARGET, i] = target
        work[_S, i] = s
        work[_LO, i] = lo
        work[_HI, i] = hi
        status_out[i] = status

    # Phase 2 (branch-free, vectorised): a fixed number of safeguarded Halley rounds.
    for _ in range(_VECTOR_ROUNDS):
        for i in range(m):
            s = work[_S, i]
            s_new, lo, hi, halley = halley_update(
                work[_X, i],
                work[_EX, i],
                work[_EMX, i],
                work[_HALF_SINH, i],
                work[_LOWER, i],
                work[_TARGET, i],
                s,
                work[_LO, i],
                work[_HI, i],
            )
            work[_S, i] = s_new
            work[_LO, i] = lo
            work[_HI, i] = hi
            # A bisection step says nothing about convergence: mark it as a large step.
            work[_STEP, i] = abs(s_new - s) / s_new if halley else 1.0

    # Phase 3: finish the stragglers one by one, convert s to sigma.
    for i in range(m):
        vol = math.nan
        if status_out[i] == _SOLVED:
            s = work[_S, i]
            if not work[_STEP, i] <= ACCEPT_STEP:
                s = polish(
                    work[_X, i],
                    work[_EX, i],
                    work[_EMX, i],
                    work[_HALF_SINH, i],
                    work[_LOWER, i],
                    work[_TARGET, i],
                    s,
                    work[_LO, i],
                    work[_HI, i],
                )
            vol = s / math.sqrt(expiry[i])
        vol_out[i] = vol


@kernel(parallel=True)
def _iv_kernel(
    price: NDArray[np.float64],
    spot: NDArray[np.float64],
    strike: NDArray[np.float64],
    expiry: NDArray[np.float64],
    rate: NDArray[np.float64],
    div: NDArray[np.float64],
    call: NDArray[np.bool_],
    vol_out: NDArray[np.float64],
    status_out: NDArray[np.int8],
    work: NDArray[np.float64],
) -> None:
    # Chunks keep the work rows in L2 between phases and the parallel region small: numba's
    # parfor passes are slow on large loop bodies, so the phases are plain loops in _iv_chunk.
    n = vol_out.shape[0]
    for c in prange(work.shape[0]):
        lo = c * _CHUNK
        hi = min(n, lo + _CHUNK)
        _iv_chunk(
            price[lo:hi],
            spot[lo:hi],
            strike[lo:hi],
            expiry[lo:hi],
            rate[lo:hi],
            div[lo:hi],
            call[lo:hi],
            vol_out[lo:hi],
            status_out[lo:hi],
            work[c],
        )


def implied_vol(
    price: ArrayLike,
    spot: ArrayLike,
    strike: ArrayLike,
    expiry_years: ArrayLike,
    rate: ArrayLike,
    dividend_yield: ArrayLike,
    is_call: ArrayLike,
) -> tuple[NDArray[np.float64], NDArray[np.int8]]:
    """Implied volatility of European option prices under Black-Scholes-Merton.

    Arguments broadcast against each other like numpy arrays.

    Args:
        price: option prices; NaN marks a missing quote (status ``MISSING_PRICE``).
        spot: underlying price, > 0.
        strike: strike price, > 0.
        expiry_years: time to expiry in years, >= 0.
        rate: continuously compounded risk-free rate per year.
        dividend_yield: continuous dividend yield per year.
        is_call: True for calls, False for puts (bool, or integer 0/1).

    Returns:
        ``(vol, status)``: volatility per sqrt(year) (NaN unless solved) and an
        ``IVStatus`` code per quote (int8), both of the broadcast shape.

    Raises:
        AnalyticsInputError: an argument other than ``price`` is NaN, infinite or out of
            its domain, an argument is not numeric, or the shapes do not broadcast.
    """
    prepared = prepare_inputs(
        {
            "price": (price, _PRICE),
            "spot": (spot, _POSITIVE),
            "strike": (strike, _POSITIVE),
            "expiry_years": (expiry_years, _NON_NEGATIVE),
            "rate": (rate, _FINITE),
            "dividend_yield": (dividend_yield, _FINITE),
        },
        {"is_call": is_call},
    )
    c = prepared.floats
    vol = np.empty(prepared.size, dtype=np.float64)
    status = np.empty(prepared.size, dtype=np.int8)
    if prepared.size:
        work = np.empty(((prepared.size + _CHUNK - 1) // _CHUNK, _WORK_ROWS, _CHUNK), dtype=np.float64)
        _iv_kernel(
            c["price"],
            c["spot"],
            c["strike"],
            c["expiry_years"],
            c["rate"],
            c["dividend_yield"],
            prepared.flags["is_call"],
            vol,
            status,
            work,
        )
    return vol.reshape(prepared.shape), status.reshape(prepared.shape)
