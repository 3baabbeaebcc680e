"""The simulated market shared by the local AlphaVantage and TWS simulators.

``SimulatedMarket`` is the entry point; the modules beside it hold its parts::

    calendar      trading days, sessions, expiry-date rules (US/Eastern)
    instruments   per-symbol parameters (known watchlist, hash-derived for the rest)
    paths         daily GBM with a volatility factor, 1-second intraday bridges
    vol_surface   SSVI implied-volatility slices with a term structure
    listings      listed expirations and strike grids
    chains        the columnar option chain and its Black-Scholes-Merton pricing
    macro, news   FRED-like macro series and synthetic news with sentiment
"""

from __future__ import annotations

from quanticity.simulation.chains import OptionChainTable, with_junk_greeks
from quanticity.simulation.errors import MarketHorizonError, SimulationRequestError
from quanticity.simulation.market import SimulatedMarket
from quanticity.simulation.vol_surface import VolSurface

__all__ = [
    "MarketHorizonError",
    "OptionChainTable",
    "SimulatedMarket",
    "SimulationRequestError",
    "VolSurface",
    "with_junk_greeks",
]
