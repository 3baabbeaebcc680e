"""Options analytics: Black-Scholes-Merton Greeks, implied volatility, provider cross-checks.

The two hot kernels are :func:`compute_greeks` (price and eight Greeks for a whole
chain) and :func:`implied_vol` (volatility and an :class:`IVStatus` per quote). Both are
numba kernels compiled on first use and cached on disk; see docs/module3_formulas.md
for the formulas and docs/benchmarks.md for speed and accuracy.
"""

from __future__ import annotations

from pathlib import Path

from quanticity.analytics._jit import refresh_stale_cache

# Before any kernel is loaded from numba's cache (see _jit for why).
refresh_stale_cache(Path(__file__).resolve().parent)

from quanticity.analytics.greeks_engine import GREEK_NAMES, Greeks, compute_greeks  # noqa: E402
from quanticity.analytics.implied_vol import IVStatus, implied_vol  # noqa: E402
from quanticity.analytics.inputs import AnalyticsInputError  # noqa: E402
from quanticity.analytics.provider_crosscheck import (  # noqa: E402
    ALPHAVANTAGE_UNITS,
    DEFAULT_TOLERANCES,
    CrossCheckResult,
    Disagreement,
    ProviderUnits,
    Tolerance,
    crosscheck_provider_greeks,
)

__all__ = [
    "ALPHAVANTAGE_UNITS",
    "DEFAULT_TOLERANCES",
    "GREEK_NAMES",
    "AnalyticsInputError",
    "CrossCheckResult",
    "Disagreement",
    "Greeks",
    "IVStatus",
    "ProviderUnits",
    "Tolerance",
    "compute_greeks",
    "crosscheck_provider_greeks",
    "implied_vol",
]
