"""The closing auction (generic tick 225) of SPY, QQQ, IWM and SPX.

The closing auction (SPY, QQQ, IWM, SPX): from 15:00 ET the indicative imbalance grows
with the square of the time elapsed, in a direction and size drawn per symbol and day;
the paired volume grows linearly, the indicative price leans toward the imbalance, and
the regulatory imbalance is published from 15:50. Outside that hour the fields show
the last completed closing cross.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from quanticity.simulation.calendar import REGULAR_CLOSE_S
from quanticity.simulation.instruments import stable_key
from quanticity.simulation.tws.contracts import to_tick
from quanticity.simulation.tws.noise import mix

__all__ = ["AUCTION_SYMBOLS", "Auction", "closing_auction"]

AUCTION_SYMBOLS = frozenset({"SPY", "QQQ", "IWM", "SPX"})
_AUCTION_START_S = REGULAR_CLOSE_S - 3600  # 15:00 ET
_REGULATORY_S = REGULAR_CLOSE_S - 600  # 15:50 ET: NYSE/Arca publish the closing imbalance


@dataclass(frozen=True, slots=True)
class Auction:
    """Closing-auction fields: indicative price, paired volume, imbalance, regulatory imbalance."""

    price: float
    volume: int
    imbalance: int
    regulatory: int


def closing_auction(
    symbol: str, k: int, s: int, mid: float, inc: float, base_volume: float, close_of: Callable[[int], float]
) -> Auction:
    """The auction fields of ``symbol`` at session second ``s`` of trading day ``k``.

    Args:
        symbol: the instrument.
        k: trading day index.
        s: second of the 04:00-20:00 ET session.
        mid: current midpoint (the indicative price leans away from it).
        inc: price increment.
        base_volume: average daily shares of the instrument (or of the ETF an index follows).
        close_of: the 16:00 close of a trading day index (for the last completed cross).
    """
    if _AUCTION_START_S <= s < REGULAR_CLOSE_S:
        x = (s - _AUCTION_START_S) / 3600.0
        h = mix(stable_key("tws-auction", symbol), k)
        sign = 1 if h % 2 else -1
        size = 0.002 + 0.010 * ((h >> 4) % 1000) / 1000.0
        wiggle = 1.0 + 0.15 * (((mix(h, s // 60) % 1000) / 1000.0) - 0.5)
        imbalance = sign * int(base_volume * size * x * x * wiggle / 100.0) * 100
        paired = int(base_volume * (0.01 + 0.03 * x) / 100.0) * 100
        price = to_tick(mid + sign * inc * (1.0 + 5.0 * x), inc)
        regulatory = imbalance if s >= _REGULATORY_S else 0
        return Auction(price, paired, imbalance, regulatory)
    day = k if s >= REGULAR_CLOSE_S else k - 1
    cross = int(base_volume * (0.03 + 0.02 * (mix(stable_key("tws-cross", symbol), day) % 100) / 100.0))
    return Auction(to_tick(close_of(day), inc), cross // 100 * 100, 0, 0)
