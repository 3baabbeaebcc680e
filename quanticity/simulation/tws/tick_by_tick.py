"""Tick-by-tick data (reqTickByTickData): Last, AllLast, BidAsk and MidPoint from the L1 quotes.

Each type emits only when its payload changes: a trade print for Last/AllLast (a new
trade second on the market's volume tape), a quote change for BidAsk, a midpoint change
for MidPoint. AllLast spreads prints over the venues that trade the symbol; Last shows
the primary exchange, as TWS reports the NBBO-eligible prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from quanticity.simulation.instruments import stable_key
from quanticity.simulation.tws import messages as m
from quanticity.simulation.tws.contracts import SimContract
from quanticity.simulation.tws.messages import Msg
from quanticity.simulation.tws.noise import mix
from quanticity.simulation.tws.quotes import Quote

__all__ = ["TICK_BY_TICK_TYPES", "TickByTickSubscription"]

TICK_BY_TICK_TYPES = ("Last", "AllLast", "BidAsk", "MidPoint")
_VENUES = ("ARCA", "NASDAQ", "NYSE", "BATS", "EDGX", "IEX", "MEMX", "DARK")


@dataclass(slots=True)
class TickByTickSubscription:
    """One reqTickByTickData stream."""

    kind: ClassVar[str] = "tick_by_tick"
    req_id: int
    contract: SimContract
    tick_type: str
    delay_s: int = 0
    _last: object = None
    _key: int = field(default=0)

    @property
    def needs_stats(self) -> bool:
        """Tick-by-tick needs no underlying statistics."""
        return False

    def render(self, q: Quote, stats: object = None) -> list[Msg]:
        """The tick-by-tick message for ``q`` if its payload changed."""
        epoch = int(q.time.timestamp())
        if self.tick_type in ("Last", "AllLast"):
            if q.last is None or (q.last_size == 0 and self.contract.sec_type != "IND"):
                return []
            trade = (q.last_ms, q.last, q.last_size)
            if trade == self._last:
                return []
            self._last = trade
            if self.tick_type == "Last":
                venue = self.contract.primary_exchange or self.contract.exchange
            else:
                if not self._key:
                    self._key = stable_key("tws-venue", self.contract.symbol)
                venue = _VENUES[mix(self._key, q.last_ms) % len(_VENUES)]
            return [
                m.tick_by_tick_last(
                    self.req_id, self.tick_type == "AllLast", q.last_ms // 1000, q.last, q.last_size, venue
                )
            ]
        if q.bid is None or q.ask is None:
            return []
        if self.tick_type == "BidAsk":
            book = (q.bid, q.ask, q.bid_size, q.ask_size)
            if book == self._last:
                return []
            self._last = book
            return [m.tick_by_tick_bid_ask(self.req_id, epoch, q.bid, q.ask, q.bid_size, q.ask_size)]
        mid = round((q.bid + q.ask) / 2.0, 10)
        if mid == self._last:
            return []
        self._last = mid
        return [m.tick_by_tick_midpoint(self.req_id, epoch, mid)]
