"""Validated, broadcast inputs for the analytics kernels, and the error for bad ones.

The public functions take numpy arrays or scalars. Here they are checked (range and
finiteness, one fused pass per array in numba) and brought to one flat, C-contiguous
float64 (or bool) array each. Scalars are expanded too: every kernel then has exactly
one numba signature, so it is compiled (and cached) once, whatever mix of scalars and
arrays callers pass. Expanding a scalar costs about 20 us per 50,000 elements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from quanticity.analytics._jit import kernel
from quanticity.errors import QuanticityError

__all__ = ["AnalyticsInputError", "Bound", "PreparedInputs", "prepare_inputs"]


class AnalyticsInputError(QuanticityError, ValueError):
    """An argument of an analytics function is malformed or out of its domain.

    Attributes:
        argument: the parameter name, e.g. ``"spot"``.
        problem: what is wrong with it.
        index: flat index (after broadcasting) of the first offending element, if any.
    """

    def __init__(self, argument: str, problem: str, *, index: int | None = None) -> None:
        self.argument = argument
        self.problem = problem
        self.index = index
        where = "" if index is None else f" (first at flat index {index})"
        super().__init__(f"invalid argument {argument!r}: {problem}{where}")


@dataclass(frozen=True, slots=True)
class Bound:
    """The open or half-open interval an argument must lie in; NaN never does.

    Attributes:
        low: lower limit (``-inf`` for none).
        low_inclusive: whether ``low`` itself is allowed.
        allow_nan: let NaN through (a missing quote is a status, not an error).
        finite: reject +inf (and -inf, unless ``low`` is ``-inf`` inclusive).
    """

    low: float = -math.inf
    low_inclusive: bool = False
    allow_nan: bool = False
    finite: bool = True

    def describe(self) -> str:
        """Human-readable domain, used in error messages."""
        if not self.finite:
            return "a number or NaN" if self.allow_nan else "a number"
        if self.low == -math.inf:
            return "a finite number"
        op = ">=" if self.low_inclusive else ">"
        return f"finite and {op} {self.low:g}"


@dataclass(frozen=True, slots=True)
class PreparedInputs:
    """Arguments brought to one flat length.

    Attributes:
        shape: the broadcast shape of the results.
        size: number of elements of that shape.
        floats: per numeric argument, a C-contiguous float64 array of ``size`` elements.
        flags: per boolean argument, a C-contiguous bool array of ``size`` elements.
    """

    shape: tuple[int, ...]
    size: int
    floats: dict[str, NDArray[np.float64]]
    flags: dict[str, NDArray[np.bool_]]


@kernel()
def _count_outside(a: NDArray[np.float64], low: float, low_inclusive: bool, allow_nan: bool, finite: bool) -> int:
    # A branch-free counting pass vectorises; an early-exit search would not.
    bad = 0
    for i in range(a.size):
        v = a[i]
        above = (v >= low) if low_inclusive else (v > low)
        ok = (above and (v < math.inf or not finite)) or (allow_nan and v != v)
        bad += 0 if ok else 1
    return bad


def _first_outside(a: NDArray[np.float64], bound: Bound) -> int:
    above = a >= bound.low if bound.low_inclusive else a > bound.low
    ok = above & ((a < math.inf) | (not bound.finite))
    if bound.allow_nan:
        ok |= np.isnan(a)
    return int(np.argmin(ok))


def _as_float_array(name: str, value: ArrayLike) -> NDArray[np.float64]:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise AnalyticsInputError(name, f"not convertible to float64 ({exc})") from exc
    return arr


def _as_bool_array(name: str, value: ArrayLike) -> NDArray[np.bool_]:
    arr = np.asarray(value)
    if arr.dtype == np.bool_:
        return arr
    if arr.dtype.kind in "iu" and bool(np.all((arr == 0) | (arr == 1))):
        return arr.astype(np.bool_)
    raise AnalyticsInputError(name, f"must be boolean (True = call), got dtype {arr.dtype}")


def prepare_inputs(
    floats: dict[str, tuple[ArrayLike, Bound]],
    flags: dict[str, ArrayLike],
) -> PreparedInputs:
    """Validate and broadcast the arguments of a kernel call.

    Args:
        floats: per argument name, its value and the domain it must lie in.
        flags: per argument name, a boolean value (``is_call``).

    Returns:
        the arguments as flat columns of one common length.

    Raises:
        AnalyticsInputError: an argument is not numeric/boolean, lies outside its domain,
            or cannot be broadcast against the arguments before it.
    """
    arrays: dict[str, NDArray[Any]] = {}
    for name, (value, _) in floats.items():
        arrays[name] = _as_float_array(name, value)
    for name, flag in flags.items():
        arrays[name] = _as_bool_array(name, flag)

    shape: tuple[int, ...] = ()
    for name, arr in arrays.items():
        try:
            shape = np.broadcast_shapes(shape, arr.shape)
        except ValueError:
            others = {n: a.shape for n, a in arrays.items() if n != name}
            raise AnalyticsInputError(
                name, f"shape {arr.shape} does not broadcast with the other arguments {others}"
            ) from None
    size = math.prod(shape)

    columns: dict[str, NDArray[Any]] = {}
    for name, arr in arrays.items():
        bound = floats[name][1] if name in floats else None
        if arr.size == 1 and size != 1:
            if bound is not None:
                _check_scalar(name, float(arr.reshape(())), bound)
            columns[name] = np.full(size, arr.reshape(()), dtype=arr.dtype)
            continue
        flat = np.ascontiguousarray(arr.ravel() if arr.shape == shape else np.broadcast_to(arr, shape).ravel())
        if bound is not None and _count_outside(flat, bound.low, bound.low_inclusive, bound.allow_nan, bound.finite):
            index = _first_outside(flat, bound)
            raise AnalyticsInputError(name, f"must be {bound.describe()}, got {flat[index]!r}", index=index)
        columns[name] = flat
    return PreparedInputs(
        shape=shape,
        size=size,
        floats={name: columns[name] for name in floats},
        flags={name: columns[name] for name in flags},
    )


def _check_scalar(name: str, value: float, bound: Bound) -> None:
    if bound.allow_nan and math.isnan(value):
        return
    above = value >= bound.low if bound.low_inclusive else value > bound.low
    if not (above and (value < math.inf or not bound.finite)):
        raise AnalyticsInputError(name, f"must be {bound.describe()}, got {value!r}")
