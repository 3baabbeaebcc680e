"""Implied-volatility surface of the simulated market: SSVI slices with a term structure.

Each expiry is an SSVI slice (Gatheral & Jacquier, "Arbitrage-free SVI volatility
surfaces", 2014) in log-moneyness ``k = ln(K/F)``::

    w(k, theta) = theta / 2 * (1 + rho*phi*k + sqrt((phi*k + rho)**2 + 1 - rho**2))
    phi(theta)  = eta / (theta**gamma * (1 + theta)**(1 - gamma))

where ``theta(T) = sigma_atm(T)**2 * T`` is the ATM total variance. With
``eta * (1 + |rho|) <= 2`` and ``0 < gamma <= 1/2`` the surface is free of butterfly
and calendar arbitrage as long as ``theta`` grows with ``T``, which the term structure
below guarantees by capping the short end at three times the long end. ``rho < 0``
makes puts richer on the downside; the skew steepens as ``T`` shrinks (``~T**-gamma``).

The ATM term structure mean-reverts from a short-end level (the day's realised
volatility plus a variance premium, lifted when the price falls intraday: the leverage
effect) to a long-run level with a three-month time constant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["SmileShape", "VolSurface", "atm_levels", "smile_shape", "term_blend"]

_MIN_VOL = 0.02
_MAX_VOL = 5.0
_TERM_TAU = 0.25  # years over which the short-end level decays to the long-run level


@dataclass(frozen=True, slots=True)
class SmileShape:
    """SSVI shape parameters of one instrument.

    Attributes:
        rho: skew (correlation) parameter, negative for equities.
        eta: curvature level of ``phi``.
        gamma: power of ``phi``; the ATM skew scales like ``T**-gamma``.
        leverage: how much ATM vol rises per unit fall of the log price since the open.
    """

    rho: float
    eta: float
    gamma: float
    leverage: float


def smile_shape(kind: str) -> SmileShape:
    """Index products have steeper put skew and a stronger leverage effect than stocks."""
    if kind in ("etf", "index"):
        return SmileShape(rho=-0.7, eta=1.15, gamma=0.45, leverage=2.5)
    return SmileShape(rho=-0.35, eta=1.4, gamma=0.45, leverage=1.0)


def atm_levels(
    spot: NDArray[np.float64], session_reference: float, day_vol: float, long_vol: float, shape: SmileShape
) -> tuple[NDArray[np.float64], float]:
    """Short-end ATM vol for each spot (leverage-lifted day vol plus a variance premium) and the long-run level.

    The short end is capped at three times the long end so that ATM total variance keeps
    growing with expiry (no calendar arbitrage).
    """
    lift = np.exp(-shape.leverage * np.log(spot / session_reference))
    long_level = 1.08 * long_vol
    return np.asarray(np.minimum(1.10 * day_vol * lift, 3.0 * long_level), dtype=np.float64), long_level


def term_blend(
    short_level: NDArray[np.float64] | float, long_level: float, expiry_years: ArrayLike
) -> NDArray[np.float64]:
    """ATM vol at ``expiry_years``: the short level decaying to the long one over ~3 months."""
    decay = np.exp(-np.asarray(expiry_years, dtype=np.float64) / _TERM_TAU)
    return np.asarray(long_level + (np.asarray(short_level) - long_level) * decay, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class VolSurface:
    """The implied-volatility surface of one underlying at one instant.

    Attributes:
        spot: underlying price the surface is quoted against.
        rate: continuously compounded risk-free rate.
        dividend_yield: continuous dividend yield.
        atm_short: ATM vol as expiry goes to zero.
        atm_long: ATM vol for long expiries.
        shape: SSVI skew and curvature parameters.
    """

    spot: float
    rate: float
    dividend_yield: float
    atm_short: float
    atm_long: float
    shape: SmileShape

    @classmethod
    def build(
        cls,
        spot: float,
        session_reference: float,
        day_vol: float,
        long_vol: float,
        rate: float,
        dividend_yield: float,
        shape: SmileShape,
    ) -> VolSurface:
        """Surface for a spot that has moved from ``session_reference`` on a day of ``day_vol``.

        Args:
            spot: current price.
            session_reference: the price at the start of the session (last close).
            day_vol: annualised volatility of the current day's path.
            long_vol: long-run annualised volatility of the instrument.
            rate: risk-free rate.
            dividend_yield: dividend yield.
            shape: smile parameters.
        """
        short_level, long_level = atm_levels(np.array([spot]), session_reference, day_vol, long_vol, shape)
        return cls(spot, rate, dividend_yield, float(short_level[0]), long_level, shape)

    def forward(self, expiry_years: ArrayLike) -> NDArray[np.float64]:
        """Forward price for each expiry."""
        t = np.asarray(expiry_years, dtype=np.float64)
        return np.asarray(self.spot * np.exp((self.rate - self.dividend_yield) * t), dtype=np.float64)

    def atm_vol(self, expiry_years: ArrayLike) -> NDArray[np.float64]:
        """ATM implied volatility for each expiry."""
        return term_blend(self.atm_short, self.atm_long, expiry_years)

    def total_variance(self, strike: ArrayLike, expiry_years: ArrayLike) -> NDArray[np.float64]:
        """SSVI total implied variance ``w = sigma**2 * T`` (arrays broadcast)."""
        t = np.asarray(expiry_years, dtype=np.float64)
        k = np.log(np.asarray(strike, dtype=np.float64) / self.forward(t))
        theta = self.atm_vol(t) ** 2 * t
        s = self.shape
        phi = s.eta / (theta**s.gamma * (1.0 + theta) ** (1.0 - s.gamma))
        pk = phi * k
        root = np.sqrt((pk + s.rho) ** 2 + 1.0 - s.rho**2)
        return np.asarray(0.5 * theta * (1.0 + s.rho * pk + root), dtype=np.float64)

    def implied_vol(self, strike: ArrayLike, expiry_years: ArrayLike) -> NDArray[np.float64]:
        """Black-Scholes implied volatility for each (strike, expiry), clipped to [2%, 500%]."""
        t = np.asarray(expiry_years, dtype=np.float64)
        vol = np.sqrt(self.total_variance(strike, t) / t)
        return np.asarray(np.clip(vol, _MIN_VOL, _MAX_VOL), dtype=np.float64)
