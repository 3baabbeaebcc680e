"""Slow-moving statistics of an underlying, for generic ticks 100, 101, 104, 106, 165 and 236."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from quanticity.simulation.calendar import to_et
from quanticity.simulation.errors import SimulationRequestError
from quanticity.simulation.market import SimulatedMarket

__all__ = ["UnderlyingStats", "underlying_stats"]


@dataclass(frozen=True, slots=True)
class UnderlyingStats:
    """Slow-moving statistics of an underlying (generic ticks 100, 101, 104, 106, 165, 236)."""

    implied_vol_30d: float | None
    hist_vol_30d: float | None
    call_open_interest: int
    put_open_interest: int
    call_volume: int
    put_volume: int
    week_ranges: tuple[tuple[float, float], ...]  # (low, high) over 13, 26, 52 weeks
    avg_volume: float
    shortable_shares: float


def underlying_stats(market: SimulatedMarket, symbol: str, t: datetime) -> UnderlyingStats:
    """The statistics of ``symbol`` at ``t``: 30-day ATM implied and historical vol, option open interest
    and volume over the whole chain, 13/26/52-week ranges, 90-day average volume."""
    spec = market.spec(symbol)
    today = to_et(t).date()
    daily = market.daily_bars(symbol, today - timedelta(days=372), today, as_of=t)
    closes = np.asarray(daily["close"], dtype=np.float64)
    hist = None
    if closes.size > 22:
        hist = float(np.std(np.diff(np.log(closes[-22:])), ddof=1) * math.sqrt(252.0))
    iv30 = None
    try:
        if spec.kind != "vol_index":
            iv30 = float(market.vol_surface(symbol, t).atm_vol(30.0 / 365.0))
    except SimulationRequestError:
        iv30 = None
    ranges = []
    for weeks in (13, 26, 52):
        start = np.datetime64(today - timedelta(weeks=weeks), "D")
        sel = daily["date"] >= start
        lows, highs = daily["low"][sel], daily["high"][sel]
        ranges.append((float(lows.min()), float(highs.max())) if lows.size else (0.0, 0.0))
    volumes = np.asarray(daily["volume"][-90:], dtype=np.float64)
    call_oi = put_oi = call_vol = put_vol = 0
    family = "SPX" if spec.option_style == "spx" else symbol
    if spec.option_style != "none":
        chain = market.chain(family, t)
        calls = chain.is_call
        call_oi, put_oi = int(chain.open_interest[calls].sum()), int(chain.open_interest[~calls].sum())
        call_vol, put_vol = int(chain.volume[calls].sum()), int(chain.volume[~calls].sum())
    avg = float(volumes.mean()) if volumes.size else 0.0
    return UnderlyingStats(iv30, hist, call_oi, put_oi, call_vol, put_vol, tuple(ranges), avg, avg * 0.5)
