"""The normalised Black function of Jäckel's "Let's Be Rational", for the implied-vol solver.

With forward ``F``, strike ``K``, discount factor ``D``, ``x = ln(F/K)`` and total
standard deviation ``s = sigma sqrt(T)``, an out-of-the-money call costs
``D sqrt(F K) b(x, s)`` with

    b(x, s) = e^{x/2} N(x/s + s/2) - e^{-x/2} N(x/s - s/2),      x <= 0,

which rises from 0 to ``b_max = e^{x/2}`` as ``s`` goes from 0 to infinity (P. Jäckel,
"Let's Be Rational", Wilmott 2015, eqs. 2.2-2.4; every other case maps onto this one by
put-call parity and ``x -> -x``). Its ``s``-derivatives are ``b' = e^{x/2} n(d1)`` and
``b'' = b' d1 d2 / s`` with ``d1,2 = x/s +- s/2``.

Both ``b`` (tiny in the lower wing) and ``b_max - b`` (tiny when ``s`` is large) are
evaluated without cancellation, which is what lets the solver reach machine precision
at minutes to expiry and in the deep wings:

* ``d1 <= 0``: ``b = e^{x/2} exp(-d1^2/2) (R(-d1) - R(-d2))`` (``R`` the Mills-type ratio
  of ``_normal.py``; the difference comes from ``mills_pair`` without cancellation);
* ``d1 > 0``: ``b = sinh(x/2) + e^{x/2} (N(d1) - 1/2) - e^{-x/2} (N(d2) - 1/2)``;
* ``b_max - b = e^{x/2} N(-d1) + e^{-x/2} N(d2)``, two tails.
"""

from __future__ import annotations

from quanticity.analytics._jit import kernel
from quanticity.analytics._normal import INV_SQRT_2PI, cdf_minus_half, gauss_exp, mills_pair

__all__ = ["normalised_black"]

_U_MAX = 1e100


@kernel(inline=True)
def normalised_black(
    x: float, s: float, ex: float, emx: float, half_sinh: float
) -> tuple[float, float, float, float, float]:
    """``b(x, s)``, ``b_max - b`` and what the Householder steps need.

    Args:
        x: log-moneyness ``ln(F/K)``, <= 0.
        s: total standard deviation ``sigma sqrt(T)``, > 0.
        ex: ``exp(x/2)`` (``b_max``).
        emx: ``exp(-x/2)``.
        half_sinh: ``(ex - emx)/2``, computed without cancellation by the caller.

    Returns:
        ``(b, b_max - b, b', d1, d2)``.
    """
    h = x / s
    d1 = h + 0.5 * s
    d2 = h - 0.5 * s
    e1 = gauss_exp(d1)
    e2 = gauss_exp(d2)
    u1 = min(abs(d1), _U_MAX)
    u2 = min(abs(d2), _U_MAX)
    one_small = u1 <= u2
    r_s, r_l, r_diff = mills_pair(min(u1, u2), max(u1, u2), s)
    tail1 = e1 * (r_s if one_small else r_l)  # N(-|d1|)
    tail2 = e2 * (r_l if one_small else r_s)  # N(-|d2|) == N(d2), d2 < 0
    if d1 <= 0.0:
        # Same side: d1 is the nearer to 0, so R(-d1) - R(-d2) == r_diff.
        b = ex * e1 * r_diff
        b_gap = ex * (1.0 - tail1) + emx * tail2
    else:
        b = half_sinh + ex * cdf_minus_half(d1, tail1) - emx * cdf_minus_half(d2, tail2)
        b_gap = ex * tail1 + emx * tail2
    return b, b_gap, ex * e1 * INV_SQRT_2PI, d1, d2
