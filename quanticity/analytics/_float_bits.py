"""LLVM-level primitives that numba does not expose: bit casts and a fused multiply-add.

The analytics kernels build ``exp`` and ``log`` from integer operations on the IEEE-754
bit pattern so that LLVM can vectorise whole loops (pip's llvmlite has no SVML, so a
call to ``math.exp`` keeps a loop scalar). The fused multiply-add gives exact products
(``a*b - fl(a*b)``) where an error term matters, independently of fast-math contraction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["as_float64", "as_int64", "fma"]


def _as_int64(typingctx: Any, x: Any) -> Any:
    """Reinterpret the bits of a float64 as an int64 (no conversion)."""
    sig = types.int64(types.float64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


def _as_float64(typingctx: Any, x: Any) -> Any:
    """Reinterpret the bits of an int64 as a float64 (no conversion)."""
    sig = types.float64(types.int64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


def _fma(typingctx: Any, a: Any, b: Any, c: Any) -> Any:
    """``a*b + c`` with a single rounding (``llvm.fma.f64``; a hardware FMA on x86-64-v3)."""
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        dbl = ir.DoubleType()
        fnty = ir.FunctionType(dbl, [dbl, dbl, dbl])
        fn = builder.module.declare_intrinsic("llvm.fma", [dbl], fnty)
        return builder.call(fn, args)

    return sig, codegen


# What numba-compiled callers see; the casts give mypy the call signatures.
as_int64 = cast("Callable[[float], int]", intrinsic(_as_int64))
as_float64 = cast("Callable[[int], float]", intrinsic(_as_float64))
fma = cast("Callable[[float, float, float], float]", intrinsic(_fma))
