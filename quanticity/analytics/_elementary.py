"""Branch-free ``exp`` and ``log`` that LLVM can vectorise inside numba loops.

Why not ``math.exp``: numba lowers it to a libm call, which keeps the whole loop
scalar (pip's llvmlite ships without Intel SVML). These versions use only adds,
multiplies, one division (``log``) and integer operations on the IEEE-754 bit
pattern, so a loop that calls them compiles to AVX2 code. Both are accurate to about
one unit in the last place (measured against mpmath in the tests).

Method (textbook, e.g. Muller, *Elementary Functions*, 3rd ed., ch. 11; Cody & Waite,
*Software Manual for the Elementary Functions*, 1980):

* ``exp(x) = 2**k * exp(r)`` with ``k = round(x / ln 2)`` and ``r = x - k ln 2``
  computed with ``ln 2`` split in two parts (Cody-Waite), ``|r| <= ln(2)/2``;
  ``exp(r)`` by its Taylor polynomial of degree 13 (truncation < 4e-18).
* ``expm1(y) = exp(y) - 1``: Taylor polynomial of degree 15 for ``|y| < 1/2`` (where
  ``exp(y) - 1`` would cancel), ``exp_(y) - 1`` beyond.
* ``log(y) = e ln 2 + 2 atanh(f)`` with ``y = 2**e * m``, ``m`` in ``[sqrt(2)/2, sqrt(2))``,
  ``f = (m - 1)/(m + 1)``, ``|f| <= 0.1716`` and the odd series of ``atanh`` to ``f**23``.
"""

from __future__ import annotations

from quanticity.analytics._float_bits import as_float64, as_int64
from quanticity.analytics._jit import kernel

__all__ = ["exp_", "expm1_", "log_"]

_MAGIC = 6755399441055744.0  # 1.5 * 2**52: adding it rounds a double to an integer
_MAGIC_BITS = 0x4338000000000000
_LOG2E = 1.4426950408889634
# ln 2 = _LN2_HI + _LN2_LO; _LN2_HI has 32 significant bits so k * _LN2_HI is exact.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_EXP_CLAMP = 1400.0  # 0 or inf beyond it anyway; keeps each half of k within the exponent range

_MANTISSA_MASK = 0x000FFFFFFFFFFFFF
_ONE_BITS = 0x3FF0000000000000
_SQRT2 = 1.4142135623730951


@kernel(inline=True)
def exp_(x: float) -> float:
    """``e**x`` for finite ``x`` (0 below about -745, inf above about 709.8).

    Args:
        x: exponent.

    Returns:
        ``exp(x)`` to about one ulp, with gradual underflow.
    """
    x = min(max(x, -_EXP_CLAMP), _EXP_CLAMP)
    t = x * _LOG2E + _MAGIC
    kf = t - _MAGIC
    r = x - kf * _LN2_HI
    r = r - kf * _LN2_LO
    # Taylor series of exp(r) in Horner form, highest degree first.
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    # k sits in the low bits of t; scale by 2**k in two halves so that results in the
    # subnormal range and k up to +-2100 stay representable at each step.
    k = as_int64(t) - _MAGIC_BITS
    k1 = k >> 1
    k2 = k - k1
    return p * as_float64((k1 + 1023) << 52) * as_float64((k2 + 1023) << 52)


@kernel(inline=True)
def log_(y: float) -> float:
    """Natural logarithm of a positive, normal, finite ``y``.

    Args:
        y: argument; zero, subnormal, negative, inf or NaN give meaningless results
            (callers validate their inputs first).

    Returns:
        ``log(y)`` to about one ulp.
    """
    bits = as_int64(y)
    e = (bits >> 52) - 1023
    m = as_float64((bits & _MANTISSA_MASK) | _ONE_BITS)  # m in [1, 2)
    big = m > _SQRT2
    m = 0.5 * m if big else m
    e = e + 1 if big else e
    f = (m - 1.0) / (m + 1.0)  # m - 1 is exact here (Sterbenz)
    s = f * f
    # atanh(f)/f - 1 = s/3 + s^2/5 + ... (odd series of atanh), Horner in s.
    p = 1.0 / 23.0
    p = p * s + 1.0 / 21.0
    p = p * s + 1.0 / 19.0
    p = p * s + 1.0 / 17.0
    p = p * s + 1.0 / 15.0
    p = p * s + 1.0 / 13.0
    p = p * s + 1.0 / 11.0
    p = p * s + 1.0 / 9.0
    p = p * s + 1.0 / 7.0
    p = p * s + 1.0 / 5.0
    p = p * s + 1.0 / 3.0
    two_f = 2.0 * f
    log_m = two_f + two_f * (s * p)
    ef = float(e)
    return ef * _LN2_HI + (ef * _LN2_LO + log_m)


@kernel(inline=True)
def expm1_(y: float) -> float:
    """``e**y - 1`` without cancellation for small ``y``.

    Args:
        y: exponent.

    Returns:
        ``expm1(y)`` to about two ulps.
    """
    # Taylor series of (e^y - 1)/y, Horner in y, highest degree first.
    p = 1.0 / 1307674368000.0
    p = p * y + 1.0 / 87178291200.0
    p = p * y + 1.0 / 6227020800.0
    p = p * y + 1.0 / 479001600.0
    p = p * y + 1.0 / 39916800.0
    p = p * y + 1.0 / 3628800.0
    p = p * y + 1.0 / 362880.0
    p = p * y + 1.0 / 40320.0
    p = p * y + 1.0 / 5040.0
    p = p * y + 1.0 / 720.0
    p = p * y + 1.0 / 120.0
    p = p * y + 1.0 / 24.0
    p = p * y + 1.0 / 6.0
    p = p * y + 1.0 / 2.0
    p = p * y + 1.0 / 1.0
    small = p * y
    # Both branches are computed so the loop stays branch-free (vectorisable).
    return small if abs(y) < 0.5 else exp_(y) - 1.0
