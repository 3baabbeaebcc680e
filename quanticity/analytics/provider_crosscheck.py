"""Cross-check a data provider's Greeks against ours and say which rows disagree and why.

AlphaVantage ships Greeks with its option chains (``delta, gamma, theta, vega, rho``)
and some are junk, typically on deep-in-the-money and same-day (0DTE) rows. This module
converts ours to the provider's units and flags each row whose provider value is off by
more than a documented tolerance.

AlphaVantage units (inferred from its demo rows in shared/reference/alphavantage.md
section 4 and checked in tests/unit/analytics against our engine): delta per 1.00 of
spot move, gamma per 1.00, theta per *calendar day* (ours / 365), vega per *one
volatility point* (ours x 0.01) and rho per *one rate point* (ours x 0.01).

Default tolerances (``DEFAULT_TOLERANCES``): a provider value ``p`` agrees with ours
``o`` when ``|p - o| <= abs_tol + rel_tol * |o|``. The absolute parts cover the
provider's five-decimal rounding and small differences of inputs (spot snapshot time,
rate curve, day count); the relative parts (5% for delta, 10% for the others) leave
room for a different volatility input while still catching the junk rows, whose
errors are of order 100%.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntFlag

import numpy as np
from numpy.typing import ArrayLike, NDArray

from quanticity.analytics.greeks_engine import Greeks
from quanticity.analytics.inputs import AnalyticsInputError

__all__ = [
    "ALPHAVANTAGE_UNITS",
    "DEFAULT_TOLERANCES",
    "CrossCheckResult",
    "Disagreement",
    "ProviderUnits",
    "Tolerance",
    "crosscheck_provider_greeks",
]

PROVIDER_GREEKS = ("delta", "gamma", "theta", "vega", "rho")
_ONE_DAY = 1.0 / 365.0
_DEEP_ITM_DELTA = 0.95


class Disagreement(IntFlag):
    """Why a row disagrees; the last two bits are context, set only on disagreeing rows."""

    NONE = 0
    DELTA = 1
    GAMMA = 2
    THETA = 4
    VEGA = 8
    RHO = 16
    NOT_A_NUMBER = 32  # the provider value is missing, NaN or infinite
    DEEP_ITM = 64  # context: |our delta| > 0.95 (times e^{-qT})
    SHORT_EXPIRY = 128  # context: at most one day (0DTE)


_FLAG_OF = {
    "delta": Disagreement.DELTA,
    "gamma": Disagreement.GAMMA,
    "theta": Disagreement.THETA,
    "vega": Disagreement.VEGA,
    "rho": Disagreement.RHO,
}


@dataclass(frozen=True, slots=True)
class ProviderUnits:
    """How the provider scales each Greek relative to ours (provider = ours x factor).

    Attributes:
        theta_factor: theta scale (1/365: per calendar day).
        vega_factor: vega scale (0.01: per volatility point).
        rho_factor: rho scale (0.01: per rate point).
    """

    theta_factor: float = 1.0 / 365.0
    vega_factor: float = 0.01
    rho_factor: float = 0.01

    def factor(self, name: str) -> float:
        """Scale of Greek ``name`` (1.0 for delta and gamma)."""
        return {"theta": self.theta_factor, "vega": self.vega_factor, "rho": self.rho_factor}.get(name, 1.0)


ALPHAVANTAGE_UNITS = ProviderUnits()


@dataclass(frozen=True, slots=True)
class Tolerance:
    """Agreement band ``|provider - ours| <= abs_tol + rel_tol * |ours|`` in provider units."""

    abs_tol: float
    rel_tol: float


DEFAULT_TOLERANCES: Mapping[str, Tolerance] = {
    "delta": Tolerance(abs_tol=0.01, rel_tol=0.05),
    "gamma": Tolerance(abs_tol=5e-4, rel_tol=0.10),
    "theta": Tolerance(abs_tol=0.01, rel_tol=0.10),
    "vega": Tolerance(abs_tol=0.005, rel_tol=0.10),
    "rho": Tolerance(abs_tol=0.005, rel_tol=0.10),
}


@dataclass(frozen=True, slots=True)
class CrossCheckResult:
    """Outcome per row.

    Attributes:
        disagrees: True where at least one provider Greek is outside its tolerance.
        reasons: ``Disagreement`` bits per row (0 where the row agrees).
        ours_in_provider_units: our Greeks converted to the provider's units.
    """

    disagrees: NDArray[np.bool_]
    reasons: NDArray[np.uint16]
    ours_in_provider_units: dict[str, NDArray[np.float64]] = field(default_factory=dict)

    def describe(self, index: int) -> str:
        """A short text for one row, e.g. ``"delta, theta (deep ITM, 0DTE)"``."""
        flags = Disagreement(int(self.reasons.ravel()[index]))
        if not flags:
            return "agrees"
        names = [name for name, bit in _FLAG_OF.items() if bit in flags]
        if Disagreement.NOT_A_NUMBER in flags:
            names.append("missing value")
        context = [
            label
            for bit, label in ((Disagreement.DEEP_ITM, "deep ITM"), (Disagreement.SHORT_EXPIRY, "0DTE"))
            if bit in flags
        ]
        return ", ".join(names) + (f" ({', '.join(context)})" if context else "")


def crosscheck_provider_greeks(
    provider: Mapping[str, ArrayLike],
    ours: Greeks,
    expiry_years: ArrayLike,
    *,
    units: ProviderUnits = ALPHAVANTAGE_UNITS,
    tolerances: Mapping[str, Tolerance] = DEFAULT_TOLERANCES,
) -> CrossCheckResult:
    """Flag rows where provider Greeks disagree with ours beyond the tolerances.

    Args:
        provider: provider values by name (any of ``delta, gamma, theta, vega, rho``), in
            the provider's units, each broadcastable to the shape of ``ours``.
        ours: our Greeks for the same contracts (``compute_greeks``).
        expiry_years: time to expiry of each contract, for the 0DTE context flag.
        units: the provider's unit conventions.
        tolerances: agreement band per Greek name.

    Returns:
        the disagreement mask, the reasons per row and our values in provider units.

    Raises:
        AnalyticsInputError: a provider key is not one of the five Greeks, or its shape
            does not broadcast to ours.
    """
    shape = ours.delta.shape
    reasons = np.zeros(shape, dtype=np.uint16)
    converted: dict[str, NDArray[np.float64]] = {}
    for name, values in provider.items():
        if name not in _FLAG_OF:
            raise AnalyticsInputError(f"provider[{name!r}]", f"not one of {', '.join(PROVIDER_GREEKS)}")
        try:
            theirs = np.broadcast_to(np.asarray(values, dtype=np.float64), shape)
        except ValueError as exc:
            raise AnalyticsInputError(f"provider[{name!r}]", f"does not broadcast to {shape}: {exc}") from None
        mine = getattr(ours, name) * units.factor(name)
        converted[name] = mine
        tol = tolerances[name]
        missing = ~np.isfinite(theirs)
        with np.errstate(invalid="ignore"):
            off = np.abs(theirs - mine) > tol.abs_tol + tol.rel_tol * np.abs(mine)
        reasons |= np.where(off & ~missing, np.uint16(_FLAG_OF[name]), np.uint16(0))
        reasons |= np.where(missing, np.uint16(Disagreement.NOT_A_NUMBER), np.uint16(0))
    disagrees = reasons != 0
    expiry = np.broadcast_to(np.asarray(expiry_years, dtype=np.float64), shape)
    deep_itm = np.abs(ours.delta) > _DEEP_ITM_DELTA
    short = expiry <= _ONE_DAY
    reasons |= np.where(disagrees & deep_itm, np.uint16(Disagreement.DEEP_ITM), np.uint16(0))
    reasons |= np.where(disagrees & short, np.uint16(Disagreement.SHORT_EXPIRY), np.uint16(0))
    return CrossCheckResult(disagrees=disagrees, reasons=reasons, ours_in_provider_units=converted)
