"""Level-1 market data (reqMktData): entitlement, market-data types, and tick rendering.

A subscription renders each new ``Quote`` into the ticks that changed since the last
one, the way TWS streams: tickPrice carries its size, options get tickOptionComputation
for model/bid/ask/last, generic ticks add the extra fields (tws.md §4.5). Delayed data
uses the delayed twin tick types (66-76, 80-83) and quotes ``delayed_minutes`` back.

Market-data type rules (real TWS behaviour):

* entitled symbol: types 1 and 3 give live data (58 says 1); 2 and 4 give frozen data
  while the market is closed (58 says 2) and live data otherwise.
* not entitled: types 1 and 2 get error 354 and no data; types 3 and 4 get notice 10167
  and delayed data (58 says 3, or 4 while closed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from quanticity.simulation.tws import messages as m
from quanticity.simulation.tws.contracts import SimContract
from quanticity.simulation.tws.messages import Msg, OptionGreeks
from quanticity.simulation.tws.quotes import Quote
from quanticity.simulation.tws.underlying_stats import UnderlyingStats

__all__ = [
    "NOT_SUBSCRIBED",
    "DataTypeDecision",
    "MarketDataSubscription",
    "decide_data_type",
]

NOT_SUBSCRIBED = (
    "Requested market data is not subscribed. Check API status by selecting the Account menu then under "
    "Management choose Market Data Subscription Manager and confirm the relevant market data subscriptions "
    "are active. Delayed market data is available.{symbol} {exchange}/TOP/ALL"
)
DISPLAYING_DELAYED = "Requested market data is not subscribed. Displaying delayed market data."

_DELAYED_PRICE = {1: 66, 2: 67, 4: 68, 6: 72, 7: 73, 9: 75, 14: 76}
_DELAYED_SIZE = {0: 69, 3: 70, 5: 71, 8: 74}
_DELAYED_OPTION = {10: 80, 11: 81, 12: 82, 13: 83}
STATS_TICKS = frozenset({100, 101, 104, 106, 165, 236})
_MISSING = object()
_EXCHANGE_LETTER = {"ARCA": "P", "NASDAQ": "Q", "NYSE": "N", "CBOE": "W", "IDEALPRO": ""}


@dataclass(frozen=True, slots=True)
class DataTypeDecision:
    """How a reqMktData is served.

    Attributes:
        data_type: the type announced with message 58, or None when no data is served.
        delayed: quote ``delayed_minutes`` back and use the delayed tick types.
        notice: an (error code, text) to send first (354 refuses, 10167 informs).
    """

    data_type: int | None
    delayed: bool
    notice: tuple[int, str] | None


def decide_data_type(requested: int, entitled: bool, market_open: bool, contract: SimContract) -> DataTypeDecision:
    """Apply the market-data-type rules above to one request."""
    frozen = requested in (2, 4) and not market_open
    if entitled:
        return DataTypeDecision(2 if frozen else 1, False, None)
    if requested in (1, 2):
        exchange = contract.primary_exchange or contract.exchange
        return DataTypeDecision(None, False, (354, NOT_SUBSCRIBED.format(symbol=contract.symbol, exchange=exchange)))
    return DataTypeDecision(4 if frozen else 3, True, (10167, DISPLAYING_DELAYED))


@dataclass(slots=True)
class MarketDataSubscription:
    """One reqMktData stream (or snapshot).

    Attributes:
        req_id: the client's ticker id.
        contract: the resolved contract.
        generic: requested generic tick ids.
        snapshot: answer once, then tickSnapshotEnd.
        data_type: the type announced (1-4).
        delay_s: how far back quotes are taken (0 for live).
    """

    kind: ClassVar[str] = "mkt_data"
    req_id: int
    contract: SimContract
    generic: frozenset[int]
    snapshot: bool
    data_type: int
    delay_s: int
    _sent: dict[str, object] = field(default_factory=dict)

    @property
    def delayed(self) -> bool:
        """Whether the delayed tick types are used."""
        return self.delay_s > 0

    @property
    def needs_stats(self) -> bool:
        """Whether the generic ticks need ``UnderlyingStats``."""
        return bool(self.generic & STATS_TICKS)

    def opening(self, min_tick: float) -> list[Msg]:
        """tickReqParams and marketDataType, sent before the first ticks."""
        bbo = "9c0001" if self.contract.sec_type in ("STK", "OPT") else ""
        return [m.tick_req_params(self.req_id, min_tick, bbo, 3), m.market_data_type(self.req_id, self.data_type)]

    def _changed(self, key: str, value: object) -> bool:
        if self._sent.get(key, _MISSING) == value:
            return False
        self._sent[key] = value
        return True

    def _price(self, out: list[Msg], tick: int, price: float | None, size: float = 0) -> None:
        if price is None or not self._changed(f"p{tick}", (price, size)):
            return
        out.append(m.tick_price(self.req_id, _DELAYED_PRICE.get(tick, tick) if self.delayed else tick, price, size))

    def _size(self, out: list[Msg], tick: int, size: float | None) -> None:
        if size is None or not self._changed(f"s{tick}", size):
            return
        out.append(m.tick_size(self.req_id, _DELAYED_SIZE.get(tick, tick) if self.delayed else tick, size))

    def _generic(self, out: list[Msg], tick: int, value: float | None) -> None:
        if value is None or not self._changed(f"g{tick}", round(value, 8)):
            return
        out.append(m.tick_generic(self.req_id, tick, value))

    def _string(self, out: list[Msg], tick: int, value: str) -> None:
        if self._changed(f"t{tick}", value):
            out.append(m.tick_string(self.req_id, tick, value))

    def _greeks(self, out: list[Msg], tick: int, greeks: OptionGreeks | None) -> None:
        if greeks is None or not self._changed(f"o{tick}", greeks):
            return
        tick_type = _DELAYED_OPTION.get(tick, tick) if self.delayed else tick
        out.append(m.tick_option_computation(self.req_id, tick_type, greeks, price_based=tick != 13))

    def render(self, q: Quote, stats: UnderlyingStats | None) -> list[Msg]:
        """The ticks that changed since the last call (everything on the first call)."""
        out: list[Msg] = []
        first = not self._sent
        if q.bid is not None:
            self._price(out, 1, q.bid, q.bid_size)
        if q.ask is not None:
            self._price(out, 2, q.ask, q.ask_size)
        self._render_trade(out, q)
        self._size(out, 8, q.volume)
        for tick, value in ((6, q.high), (7, q.low), (9, q.close), (14, q.open)):
            self._price(out, tick, value)
        c = self.contract
        if first and c.sec_type in ("STK", "OPT"):
            letter = _EXCHANGE_LETTER.get(c.primary_exchange, "Z") if c.sec_type == "STK" else "W"
            for tick in (32, 33, 84):
                self._string(out, tick, letter)
            self._generic(out, 49, 0.0)  # not halted
        self._render_option(out, q)
        if q.auction is not None and 225 in self.generic:
            a = q.auction
            self._size(out, 34, a.volume)
            self._price(out, 35, a.price)
            self._size(out, 36, a.imbalance)
            self._size(out, 61, a.regulatory)
        if stats is not None:
            self._render_stats(out, stats, option=q.option is not None)
        return out

    def _render_trade(self, out: list[Msg], q: Quote) -> None:
        if q.last is None:
            return
        if q.option is not None:
            # An option's last only moves when it trades: hold it until the volume changes.
            if self._changed("opt_volume", q.volume):
                self._price(out, 4, q.last, q.last_size)
                self._greeks(out, 12, q.option.last)
            return
        self._price(out, 4, q.last, q.last_size)
        if not q.last_size or not self._changed("last_ms", q.last_ms):
            return
        if not self.delayed:
            self._string(out, 45, str(q.last_ms // 1000))
        if 233 in self.generic:
            vwap = "" if q.vwap is None else f"{q.vwap:.8f}"
            volume = "" if q.volume is None else str(q.volume)
            single = "true" if q.last_size < 200 else "false"
            out.append(m.tick_string(self.req_id, 48, f"{q.last};{q.last_size};{q.last_ms};{volume};{vwap};{single}"))

    def _render_option(self, out: list[Msg], q: Quote) -> None:
        o = q.option
        if o is None:
            return
        self._greeks(out, 10, o.bid)
        self._greeks(out, 11, o.ask)
        self._greeks(out, 13, o.model)
        if 106 in self.generic:
            self._generic(out, 24, o.implied_vol)
        if 101 in self.generic:
            self._size(out, 27 if o.is_call else 28, o.open_interest)

    def _render_stats(self, out: list[Msg], s: UnderlyingStats, option: bool) -> None:
        if 104 in self.generic:
            self._generic(out, 23, s.hist_vol_30d)
        if option:
            return
        if 106 in self.generic:
            self._generic(out, 24, s.implied_vol_30d)
        wanted = {
            101: ((27, s.call_open_interest), (28, s.put_open_interest)),
            100: ((29, s.call_volume), (30, s.put_volume)),
            236: ((89, round(s.shortable_shares)),),
        }
        for generic, sizes in wanted.items():
            if generic in self.generic:
                for tick, size in sizes:
                    self._size(out, tick, size)
        if 236 in self.generic:
            self._generic(out, 46, 3.0)  # shortable: more than 1000 shares available
        if 165 in self.generic:
            for (low, high), (lo_tick, hi_tick) in zip(s.week_ranges, ((15, 16), (17, 18), (19, 20)), strict=True):
                self._price(out, lo_tick, low or None)
                self._price(out, hi_tick, high or None)
            self._size(out, 21, round(s.avg_volume))
