"""Level-2 market depth (reqMktDepth): a book derived from the level-1 quote, streamed as diffs.

The best level of each side is the L1 bid/ask with its size. Deeper levels step away
by one or two ticks; which prices are skipped, and which market maker shows each price,
depend only on the symbol and the price, so the book's shape is anchored to prices:
when the quote moves a tick, most levels stay and the diff is an insert at one end and
a delete at the other, while sizes refresh every second as updates. Operations are
ordered so that a list-based client book (ib_insync's ``domBids``/``domAsks``) always
holds exactly the simulator's book.

Rules (real TWS): depth is served per exchange only. ``SMART`` or ``isSmartDepth``
and non-stock contracts are refused with error 10092 ("Deep market data is not
supported for this combination of security type/exchange"); a fourth simultaneous
request on one connection gets error 309.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from quanticity.simulation.instruments import stable_key
from quanticity.simulation.tws import messages as m
from quanticity.simulation.tws.contracts import DEPTH_EXCHANGES, SimContract
from quanticity.simulation.tws.messages import Msg
from quanticity.simulation.tws.noise import mix
from quanticity.simulation.tws.quotes import Quote

__all__ = [
    "DEPTH_NOT_SUPPORTED",
    "MAX_DEPTH_REACHED",
    "DepthSubscription",
    "Level",
    "book_operations",
    "build_side",
    "depth_exchange_rows",
    "depth_refusal",
]

DEPTH_NOT_SUPPORTED = "Deep market data is not supported for this combination of security type/exchange"
MAX_DEPTH_REACHED = "Max number ({n}) of market depth requests has been reached"
_MARKET_MAKERS = ("NSDQ", "ARCA", "BATS", "EDGX", "IEXG", "MEMX", "NYSE", "CDRG", "GSCO", "MSCO", "UBSS", "VIRT")

INSERT, UPDATE, DELETE = 0, 1, 2
ASK, BID = 0, 1


@dataclass(frozen=True, slots=True)
class Level:
    """One price level: integer price in ticks, size, market maker."""

    ticks: int
    size: int
    market_maker: str


def depth_exchange_rows() -> list[tuple[str, str, str, str, int]]:
    """mktDepthExchanges rows: (exchange, secType, listingExch, serviceDataType, aggGroup)."""
    return [(ex, "STK", "", "Deep2" if ex == "ISLAND" else "Deep", 1) for ex in DEPTH_EXCHANGES]


def depth_refusal(contract: SimContract, exchange: str, smart_depth: bool) -> str | None:
    """The 10092 text when this depth request cannot be served, else None."""
    if smart_depth or exchange in ("", "SMART") or contract.sec_type != "STK" or exchange not in DEPTH_EXCHANGES:
        return DEPTH_NOT_SUPPORTED
    return None


def build_side(best_ticks: int, best_size: int, side: int, rows: int, key: int, second: int) -> list[Level]:
    """``rows`` levels of one side, best first (bids descending, asks ascending, in ticks)."""
    step = -1 if side == BID else 1
    levels = [Level(best_ticks, best_size, _MARKET_MAKERS[mix(key, best_ticks) % len(_MARKET_MAKERS)])]
    ticks = best_ticks
    while len(levels) < rows:
        ticks += step
        if mix(key, ticks, 7) % 4 == 0:  # this price has no resting order
            continue
        if ticks <= 0:
            break
        size = 100 * (1 + (mix(key, ticks, second) % 40))
        levels.append(Level(ticks, size, _MARKET_MAKERS[mix(key, ticks) % len(_MARKET_MAKERS)]))
    return levels


def book_operations(old: list[Level], new: list[Level]) -> list[tuple[int, int, Level]]:
    """(operation, position, level) turning the list ``old`` into ``new``.

    Deletes go first, from the deepest position up, so positions stay valid; then a
    walk over ``new`` inserts prices ``old`` lacks and updates changed sizes.
    """
    ops: list[tuple[int, int, Level]] = []
    keep = {lv.ticks for lv in new}
    current = list(old)
    for pos in range(len(current) - 1, -1, -1):
        if current[pos].ticks not in keep:
            ops.append((DELETE, pos, current.pop(pos)))
    for pos, level in enumerate(new):
        if pos < len(current) and current[pos].ticks == level.ticks:
            if current[pos] != level:
                current[pos] = level
                ops.append((UPDATE, pos, level))
        else:
            current.insert(pos, level)
            ops.append((INSERT, pos, level))
    return ops


@dataclass(slots=True)
class DepthSubscription:
    """One reqMktDepth stream on an explicit exchange."""

    kind: ClassVar[str] = "depth"
    req_id: int
    contract: SimContract
    rows: int
    delay_s: int = 0
    _bids: list[Level] = field(default_factory=list)
    _asks: list[Level] = field(default_factory=list)

    @property
    def needs_stats(self) -> bool:
        """Depth needs no underlying statistics."""
        return False

    def render(self, q: Quote, stats: object = None) -> list[Msg]:
        """The depth operations since the last quote."""
        if q.bid is None or q.ask is None:
            return []
        inc = q.increment
        key = stable_key("tws-depth", self.contract.symbol, self.contract.exchange)
        second = int(q.time.timestamp())
        bids = build_side(round(q.bid / inc), q.bid_size, BID, self.rows, key, second)
        asks = build_side(round(q.ask / inc), q.ask_size, ASK, self.rows, key, second)
        out: list[Msg] = []
        for side, old, new in ((BID, self._bids, bids), (ASK, self._asks, asks)):
            for op, pos, level in book_operations(old, new):
                price = round(level.ticks * inc, 10)
                size = 0 if op == DELETE else level.size
                out.append(m.mkt_depth_l2(self.req_id, pos, level.market_maker, op, side, price, size))
        self._bids, self._asks = bids, asks
        return out
