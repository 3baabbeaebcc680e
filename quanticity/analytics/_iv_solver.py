"""Safeguarded Halley iterations on the normalised Black function (see ``_black_normalised``).

Solve ``b(x, s) = beta`` for ``s > 0`` with ``x <= 0`` and ``0 < beta < b_max = e^{x/2}``.

* Region. ``b`` is convex in ``s`` below the inflection point ``s_c = sqrt(2|x|)`` and
  concave above it (Jäckel 2015, section 3). At ``s_c``, ``d1 = 0`` so
  ``b_c = e^{x/2}/2 - e^{-x/2} N(-s_c)`` is one tail evaluation.
* Objective. Below ``b_c`` the solver works on ``g = ln b - ln beta`` (``ln b`` is close to
  ``-x^2/(2 s^2)``, nearly linear in ``1/s^2``), above it on
  ``g = ln(b_max - beta) - ln(b_max - b)``; both are increasing in ``s`` and are evaluated
  without cancellation. These are the transformations Jäckel uses for the outer
  branches; we use them everywhere and let the bracket handle the rest.
* First guess. Below ``b_c``: Jäckel's lower-branch function
  ``f_l(s) = 2 pi |x| / (3 sqrt 3) N(-|x| / (sqrt(3) s))^3``, which has the small-``s``
  asymptotics of ``b``, inverted in closed form (without his rational-cubic correction).
  Above: ``b_max - b ~ (e^{x/2} + e^{-x/2}) N(-s/2)`` (exact at ``x = 0``). The normal
  quantiles come from Hastings' approximation alone (|error| < 4.5e-4). Both are
  clamped to their side of ``s_c`` and to ``s >= beta sqrt(2 pi)`` (``b' <= n(0)``, so this
  is a lower bound of the root).
* Step. Halley, ``s += -(g/g') / (1 - g g''/(2 g'^2))``, or Newton when that denominator
  is below 1/2; any step that leaves the bracket ``(lo, hi)`` (which every evaluation
  narrows, since the sign of ``g`` says on which side of the root ``s`` lies) is
  replaced by a bisection in ``log s``. Convergence is therefore guaranteed and, from
  these guesses, cubic after the first step.

The chain kernel runs a fixed number of branch-free ``halley_update`` rounds over all
quotes (LLVM vectorises them), then finishes the few quotes whose last step was not
yet negligible with ``polish`` (a scalar loop to full convergence).
"""

from __future__ import annotations

import math

from quanticity.analytics._black_normalised import normalised_black
from quanticity.analytics._elementary import exp_, expm1_, log_
from quanticity.analytics._jit import kernel
from quanticity.analytics._normal import INV_SQRT_2PI, gauss_exp, mills_r, normal_quantile_rough

__all__ = ["ACCEPT_STEP", "halley_update", "initial_state", "polish"]

_SQRT_2PI = 2.5066282746310002
_SQRT3 = 1.7320508075688772
_LOWER_SCALE = 3.0 * _SQRT3 / (2.0 * math.pi)  # f_l(s) = 2 pi |x| / (3 sqrt 3) N(-|x|/(sqrt(3) s))^3
# A Halley step of this relative size leaves an error of order its cube (~1e-18): accept it.
ACCEPT_STEP = 1e-6
_TOLERANCE = 4e-16  # relative bracket width at which polish() stops in any case
_MAX_ITERATIONS = 100  # bisection alone gains ~1 bit per step; never reached in tests


@kernel(inline=True)
def initial_state(x: float, beta: float, gap: float) -> tuple[float, float, float, float, float, float, float, float]:
    """Region, objective target, first guess and bracket for one quote.

    Args:
        x: log-moneyness of the out-of-the-money call, <= 0.
        beta: normalised price, in ``(0, e^{x/2})``.
        gap: ``e^{x/2} - beta`` computed without cancellation.

    Returns:
        ``(lower, target, s, lo, hi, ex, emx, half_sinh)`` where ``lower`` is 1.0 below
        the inflection point and 0.0 above it, and the last three are ``e^{x/2}``,
        ``e^{-x/2}`` and ``(e^{x/2} - e^{-x/2})/2``.
    """
    ex = exp_(0.5 * x)
    emx = exp_(-0.5 * x)
    half_sinh = -0.5 * ex * expm1_(-x)
    s_c = math.sqrt(-2.0 * x)
    b_c = 0.5 * ex - emx * gauss_exp(s_c) * mills_r(s_c)
    lower = beta < b_c
    floor = beta * _SQRT_2PI

    # Lower guess (Jäckel's f_l, inverted in closed form); computed for every quote so the
    # loop stays branch-free, used below b_c.
    v = exp_(log_(beta * _LOWER_SCALE / (-x if x < 0.0 else 1.0)) * (1.0 / 3.0))  # cube root
    z_l = normal_quantile_rough(min(v, 0.5))
    s_fl = -x / (_SQRT3 * -z_l) if z_l < 0.0 else s_c
    # The tangent at s_c: b is convex below s_c, so it over-estimates the root there and
    # under-estimates it above; it is the better guess near b_c, where f_l runs out of range.
    slope_c = ex * INV_SQRT_2PI  # b'(s_c), d1 = 0
    s_tan = s_c + (beta - b_c) / slope_c
    s_lower = max(min(s_fl, s_tan if s_tan > 0.0 else s_c, s_c), floor)

    # Upper guess; used at or above b_c.
    p = min(gap / (ex + emx), 0.5)
    s_upper = max(-2.0 * normal_quantile_rough(p), s_tan, s_c, floor)

    target = log_(beta) if lower else log_(gap)
    s = s_lower if lower else s_upper
    lo = 0.0 if lower else s_c
    hi = s_c if lower else math.inf
    return (1.0 if lower else 0.0), target, s, lo, hi, ex, emx, half_sinh


@kernel(inline=True)
def halley_update(
    x: float, ex: float, emx: float, half_sinh: float, lower: float, target: float, s: float, lo: float, hi: float
) -> tuple[float, float, float, bool]:
    """One evaluation of ``b`` and the next iterate; branch-free so loops vectorise.

    Args:
        x: log-moneyness, <= 0.
        ex: ``e^{x/2}``.
        emx: ``e^{-x/2}``.
        half_sinh: ``(e^{x/2} - e^{-x/2})/2``.
        lower: 1.0 for the ``ln b`` objective, 0.0 for the ``ln(b_max - b)`` one.
        target: ``ln beta`` or ``ln(b_max - beta)``.
        s: current iterate, inside ``(lo, hi)``.
        lo: lower end of the bracket.
        hi: upper end of the bracket.

    Returns:
        ``(s_next, lo, hi, halley)``; ``halley`` is False when the step was a bisection.
    """
    b, b_gap, bp, d1, d2 = normalised_black(x, s, ex, emx, half_sinh)
    is_lower = lower > 0.5
    v = b if is_lower else b_gap
    sign = 1.0 if is_lower else -1.0
    valid = v > 0.0  # b or b_max - b can underflow far from the root
    lv = log_(v if valid else 1.0)
    # g < 0 exactly when b(s) < beta. Where v underflowed, b < beta (lower) or b > beta (upper).
    g = sign * (lv - target) if valid else -sign * math.inf
    gp = bp / v
    gpp = gp * (d1 * d2 / s - sign * gp)  # b''/b' == d1 d2 / s
    lo = s if g < 0.0 else lo
    hi = s if g > 0.0 else hi
    newton = -g / gp
    denom = 1.0 + 0.5 * newton * gpp / gp
    s_new = s + (newton / denom if denom > 0.5 else newton)
    # Closed bracket: at convergence s_new rounds onto the end just set to s. False for NaN.
    inside = lo <= s_new <= hi and s_new > 0.0
    bisect = 4.0 * lo if hi == math.inf else (0.25 * hi if lo == 0.0 else math.sqrt(lo * hi))
    s_new = s_new if inside else bisect
    s_new = s if g == 0.0 else s_new
    return s_new, lo, hi, inside and valid


@kernel()
def polish(
    x: float, ex: float, emx: float, half_sinh: float, lower: float, target: float, s: float, lo: float, hi: float
) -> float:
    """Iterate ``halley_update`` until a Halley step is below ``ACCEPT_STEP`` relative.

    Args:
        x: log-moneyness, <= 0.
        ex: ``e^{x/2}``.
        emx: ``e^{-x/2}``.
        half_sinh: ``(e^{x/2} - e^{-x/2})/2``.
        lower: region flag from ``initial_state``.
        target: objective target from ``initial_state``.
        s: starting iterate inside the bracket.
        lo: lower end of the bracket.
        hi: upper end of the bracket.

    Returns:
        the converged total standard deviation ``s``.
    """
    for _ in range(_MAX_ITERATIONS):
        s_new, lo, hi, halley = halley_update(x, ex, emx, half_sinh, lower, target, s, lo, hi)
        # Halley converges cubically: after a step of relative size e the error is of order
        # e^3, so a small step is accepted without another evaluation. Waiting for a step of
        # one ulp instead would loop on the evaluation noise of b in the far wings.
        if (halley and abs(s_new - s) <= ACCEPT_STEP * s_new) or hi - lo <= _TOLERANCE * lo:
            return s_new
        s = s_new
    return s
