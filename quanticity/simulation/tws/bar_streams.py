"""Streaming bars: 5-second real-time bars (50) and keepUpToDate history updates (90).

Both are stepped by the feed on every tick and compute their bar in the underlying
worker thread only when one is due: a real-time bar at each 5-second boundary (for the
5 seconds just ended, flat at the current price when nothing traded), an update every
``update_s`` carrying the bar in progress (sent only when it changed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import ClassVar

from quanticity.simulation.calendar import REGULAR_CLOSE_S, REGULAR_OPEN_S
from quanticity.simulation.tws import messages as m
from quanticity.simulation.tws.bars import DAY, BarRequest
from quanticity.simulation.tws.messages import Bar, Msg
from quanticity.simulation.tws.state import SimState

__all__ = ["HistoricalUpdates", "RealtimeBars"]

_RT_BAR_S = 5


@dataclass(slots=True)
class RealtimeBars:
    """reqRealTimeBars: one bar every 5 seconds, aligned to the epoch."""

    kind: ClassVar[str] = "realtime_bars"
    req_id: int
    request: BarRequest
    last_boundary: int = 0

    @property
    def contract_id(self) -> int:
        """The contract's conId."""
        return self.request.contract.con_id

    def start(self, now: datetime) -> None:
        """Anchor the stream: the first bar ends at the next 5-second boundary."""
        self.last_boundary = int(now.timestamp()) // _RT_BAR_S * _RT_BAR_S

    async def step(self, state: SimState, now: datetime) -> list[Msg]:
        """The bar that just completed, if a boundary passed."""
        boundary = int(now.timestamp()) // _RT_BAR_S * _RT_BAR_S
        if boundary <= self.last_boundary:
            return []
        self.last_boundary = boundary
        end = datetime.fromtimestamp(boundary, UTC)
        start = end - timedelta(seconds=_RT_BAR_S)
        if self.request.use_rth:
            s = state.market.calendar.session_second(start)[1]
            if not REGULAR_OPEN_S <= s < REGULAR_CLOSE_S:
                return []
        bar = await state.run(lambda: state.bars.window(self.request, start, end, flat_when_empty=True))
        return [] if bar is None else [m.realtime_bar(self.req_id, bar)]


@dataclass(slots=True)
class HistoricalUpdates:
    """reqHistoricalData with keepUpToDate: the bar in progress, resent when it changes."""

    kind: ClassVar[str] = "historical_updates"
    req_id: int
    request: BarRequest
    update_s: float = 1.0
    _next: float = 0.0
    _last: Bar | None = field(default=None)

    @property
    def contract_id(self) -> int:
        """The contract's conId."""
        return self.request.contract.con_id

    def start(self, now: datetime) -> None:
        """Updates begin one interval after the initial bars."""
        self._next = time.monotonic() + self.update_s

    async def step(self, state: SimState, now: datetime) -> list[Msg]:
        """historicalDataUpdate for the current bar when it is due and changed."""
        if time.monotonic() < self._next:
            return []
        self._next = time.monotonic() + self.update_s
        size = self.request.bar_s
        epoch = int(now.timestamp())
        start = now if size >= DAY else datetime.fromtimestamp(epoch // size * size, UTC)
        bar = await state.run(lambda: state.bars.window(self.request, start, now, flat_when_empty=False))
        if bar is None or bar == self._last:
            return []
        self._last = bar
        return [m.historical_data_update(self.req_id, bar)]
