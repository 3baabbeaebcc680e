"""The feed: wall-clock loops that re-quote every subscription, match resting orders, stream bars,
and push P&L and account updates.

Two quote loops run side by side, one for underlyings (stocks, ETFs, indices, FX) and
one for options, each computing all the quotes it needs in one worker-thread call per
tick; a slow option chain never delays stock ticks. Each tick: quotes are computed once
per (contract, delay), resting orders are matched first (so a fill's messages precede
the tick that caused it), then every subscription renders what changed. While the
simulator is stalled or has lost connectivity, nothing streams.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta

from quanticity.simulation.errors import MarketHorizonError, SimulationRequestError
from quanticity.simulation.tws.contracts import SimContract
from quanticity.simulation.tws.handlers_trading import pnl_message, pnl_values
from quanticity.simulation.tws.quotes import Quote
from quanticity.simulation.tws.session import QuoteSubscription, Session
from quanticity.simulation.tws.state import SimState
from quanticity.simulation.tws.underlying_stats import UnderlyingStats

__all__ = ["Feed"]

log = logging.getLogger(__name__)

_Key = tuple[int, int]  # (conId, delay seconds)
_Result = dict[_Key, tuple[Quote, UnderlyingStats | None]]


class Feed:
    """The simulator's streaming loops.

    Args:
        state: shared simulator state.
        sessions: the connected sessions (called on every tick).
    """

    def __init__(self, state: SimState, sessions: Callable[[], Iterable[Session]]) -> None:
        self.state = state
        self.sessions = sessions
        self._tasks: list[asyncio.Task[None]] = []
        self.ticks = 0

    def start(self) -> None:
        """Start the loops (idempotent)."""
        if self._tasks:
            return
        interval = self.state.config.tick_interval_s
        self._tasks = [
            asyncio.create_task(self._loop(interval, lambda: self._quotes(options=False)), name="tws-feed-und"),
            asyncio.create_task(self._loop(interval, lambda: self._quotes(options=True)), name="tws-feed-opt"),
            asyncio.create_task(self._loop(interval, self._bars), name="tws-feed-bars"),
            asyncio.create_task(self._loop(self.state.config.pnl_interval_s, self._pnl), name="tws-feed-pnl"),
            asyncio.create_task(
                self._loop(self.state.config.account_push_interval_s, self._account), name="tws-feed-account"
            ),
        ]

    async def stop(self) -> None:
        """Cancel the loops and wait for them."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self, interval: float, step: Callable[[], Awaitable[None]]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval - loop.time() % interval)
            if self.state.faults.data_paused:
                continue
            try:
                await step()
            except Exception:  # one bad tick must not end the feed; the trace goes to the log
                log.exception("feed step failed")

    # ------------------------------------------------------------------ quotes
    def _wanted(
        self, options: bool
    ) -> tuple[dict[_Key, tuple[SimContract, bool]], list[tuple[Session, QuoteSubscription, _Key]]]:
        """What to quote this tick: (conId, delay) -> (contract, with stats), and who renders each."""
        wanted: dict[_Key, tuple[SimContract, bool]] = {}
        targets: list[tuple[Session, QuoteSubscription, _Key]] = []

        def want(contract: SimContract, delay: int, stats: bool) -> _Key:
            key = (contract.con_id, delay)
            previous = wanted.get(key)
            wanted[key] = (contract, stats or (previous is not None and previous[1]))
            return key

        for session in list(self.sessions()):
            for sub in list(session.quote_subs.values()):
                if (sub.contract.sec_type == "OPT") == options:
                    targets.append((session, sub, want(sub.contract, sub.delay_s, sub.needs_stats)))
        held = [o.contract for o in self.state.orders.working()] + [
            p.contract for p in self.state.account.open_positions()
        ]
        for contract in held:
            if (contract.sec_type == "OPT") == options:
                want(contract, 0, False)
        return wanted, targets

    async def _quotes(self, options: bool) -> None:
        state = self.state
        now = state.now()
        wanted, targets = self._wanted(options)
        if not wanted:
            return
        results = await state.run(lambda: self._compute(wanted, now), option=options)
        self.ticks += 1
        events = []
        for (con_id, delay), (quote, _) in results.items():
            if delay == 0:
                state.latest[con_id] = quote
                events += state.orders.on_quote(con_id, quote, now)
        state.route(events)
        for session, sub, key in targets:
            if key in results and session.quote_subs.get(sub.req_id) is sub:
                quote, stats = results[key]
                msgs = sub.render(quote, stats)
                if msgs:
                    session.send_many(msgs)

    def _compute(self, wanted: dict[_Key, tuple[SimContract, bool]], now: datetime) -> _Result:
        out: _Result = {}
        engine = self.state.quotes
        for key, (contract, with_stats) in wanted.items():
            at = now - timedelta(seconds=key[1])
            try:
                quote = engine.quote(contract, at)
                out[key] = (quote, engine.stats(contract, at) if with_stats else None)
            except (SimulationRequestError, MarketHorizonError) as exc:
                log.warning("cannot quote %s at %s: %s", contract.local_symbol, at.isoformat(), exc)
        return out

    # ------------------------------------------------------------------ bars, P&L, account
    async def _bars(self) -> None:
        now = self.state.now()
        for session in list(self.sessions()):
            for sub in list(session.bar_subs.values()):
                msgs = await sub.step(self.state, now)
                if msgs and session.bar_subs.get(sub.req_id) is sub:
                    session.send_many(msgs)

    async def _pnl(self) -> None:
        """Every P&L interval: expire DAY orders whose session closed, then push P&L that changed."""
        self.state.route(self.state.orders.expire(self.state.now()))
        for session in list(self.sessions()):
            for req_id, con_id in list(session.pnl_subs.items()):
                values = pnl_values(session, con_id)
                rounded = tuple(round(v, 2) for v in values)
                if session.pnl_sent.get(req_id) != rounded:
                    session.pnl_sent[req_id] = rounded
                    session.send(pnl_message(req_id, con_id, values))

    async def _account(self) -> None:
        self.state.push_account(None)
