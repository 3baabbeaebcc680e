"""``TwsSimulator``: a TWS / IB Gateway speaking the socket protocol on loopback over a simulated market.

::

    sim = TwsSimulator(market, TwsSimConfig(), clock)
    port = await sim.start()            # port 0 picks a free port
    ...  ib_insync.IB().connectAsync("127.0.0.1", port, clientId=7)
    await sim.stop()

Faults (also over the optional loopback control server, see ``faults``):
``drop_connections``, ``stall``, ``restart``, ``connectivity_lost``. Orders, executions
and the account survive reconnects and restarts; subscriptions end with their connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from quanticity.analytics.greeks_engine import compute_greeks
from quanticity.analytics.implied_vol import implied_vol
from quanticity.simulation.market import SimulatedMarket
from quanticity.simulation.tws import messages as m
from quanticity.simulation.tws.account import SimAccount
from quanticity.simulation.tws.config import TwsSimConfig
from quanticity.simulation.tws.faults import start_control_server
from quanticity.simulation.tws.handlers_data import DATA_HANDLERS, ignore
from quanticity.simulation.tws.handlers_options import OPTION_HANDLERS
from quanticity.simulation.tws.handlers_trading import TRADING_HANDLERS
from quanticity.simulation.tws.orders import Execution, SimOrder
from quanticity.simulation.tws.session import Handler, Session
from quanticity.simulation.tws.state import Clock, SimState, wall_clock
from quanticity.simulation.tws.streaming import Feed

__all__ = ["TwsSimulator", "run_forever"]

log = logging.getLogger(__name__)

CONNECTIVITY_LOST = "Connectivity between IB and Trader Workstation has been lost."
CONNECTIVITY_RESTORED = (
    "Connectivity between IB and Trader Workstation has been restored - data maintained. "
    "All data farms are connected: usfarm; ushmds; secdefil."
)


class TwsSimulator:
    """A TWS-protocol server over a ``SimulatedMarket``.

    Args:
        market: the simulated market every price comes from.
        config: accounts, pacing, cadence, entitlements, fills.
        clock: the simulator's notion of now (aware UTC); wall time by default.
    """

    def __init__(self, market: SimulatedMarket, config: TwsSimConfig | None = None, clock: Clock | None = None) -> None:
        self.state = SimState(market, config or TwsSimConfig(), clock or wall_clock)
        self.host = "127.0.0.1"
        self.port = 0
        self._server: asyncio.Server | None = None
        self._sessions: set[Session] = set()
        self._connections: set[asyncio.Task[Any]] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._warmed = asyncio.Event()
        self._control: web.AppRunner | None = None
        self.control_port: int | None = None
        self.feed = Feed(self.state, lambda: [s for s in self._sessions if s.client_id is not None])
        self.handlers: dict[int, Handler] = {**DATA_HANDLERS, **TRADING_HANDLERS, **OPTION_HANDLERS, 15: ignore}

    @property
    def config(self) -> TwsSimConfig:
        """The configuration in force."""
        return self.state.config

    # ------------------------------------------------------------------ lifecycle
    async def start(self, host: str = "127.0.0.1", port: int = 0, control_port: int | None = None) -> int:
        """Listen on ``host:port`` and start streaming; returns the bound port.

        Args:
            host: interface to bind (loopback by default).
            port: TCP port; 0 picks a free one.
            control_port: also serve the fault-control HTTP API on this loopback port.
        """
        self.host = host
        await self._listen(port)
        self.feed.start()
        self.spawn(self._warm_up())
        if control_port is not None:
            self._control = await start_control_server(self, control_port, self.spawn)
            self.control_port = int(self._control.addresses[0][1])
        log.info("TWS simulator listening on %s:%d", self.host, self.port)
        return self.port

    async def stop(self) -> None:
        """Close the listener and every connection, stop the feed and the worker threads."""
        if self._control is not None:
            await self._control.cleanup()
            self._control = None
        await self._close_listener()
        await self._drop_all()
        await self.feed.stop()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self.state.shutdown()

    async def _listen(self, port: int) -> None:
        self._server = await asyncio.start_server(self._on_connect, self.host, port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _close_listener(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):  # wait_closed only reports what close() already did
                async with asyncio.timeout(1.0):
                    await self._server.wait_closed()
            self._server = None

    async def _drop_all(self) -> None:
        self.drop_connections()
        if self._connections:
            await asyncio.wait(self._connections, timeout=2.0)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the background, kept until it finishes or the simulator stops."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _warm_up(self) -> None:
        # The analytics kernels compile (or load from the numba cache) on first use: do it
        # in the option worker now rather than on the first option request.
        def kernels() -> None:
            compute_greeks(100.0, [100.0], [0.1], 0.04, 0.0, [0.2], [True])
            implied_vol([5.0], 100.0, 100.0, 0.5, 0.04, 0.0, True)

        await self.state.run(kernels, option=True)
        self._warmed.set()

    async def warmed_up(self) -> None:
        """Wait until the option kernels are compiled (the calculators then answer in milliseconds)."""
        await self._warmed.wait()

    # ------------------------------------------------------------------ connections
    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(self.state, reader, writer, self.handlers, self._claim)
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        self._sessions.add(session)
        try:
            await session.serve()
        finally:
            self._sessions.discard(session)
            self.state.peers.discard(session)
            if task is not None:
                self._connections.discard(task)

    def _claim(self, session: Session, client_id: int) -> bool:
        if any(s.client_id == client_id and not s.closed.is_set() for s in self._sessions if s is not session):
            log.warning("client id %d is already connected; refusing a second connection", client_id)
            return False
        self.state.peers.add(session)
        return True

    # ------------------------------------------------------------------ faults
    def drop_connections(self, client_id: int | None = None) -> int:
        """Close client sockets abruptly (all, or those of ``client_id``); returns how many."""
        dropped = 0
        for session in list(self._sessions):
            if client_id is None or session.client_id == client_id:
                session.abort()
                dropped += 1
        return dropped

    def stall(self, seconds: float) -> None:
        """Stop answering for ``seconds``; sockets stay open, requests queue (paced on arrival), held replies follow."""
        self.state.faults.stall(seconds)
        asyncio.get_running_loop().call_later(seconds, self._end_stall)

    def _end_stall(self) -> None:
        if self.state.faults.stalled:
            return  # a longer stall was requested meanwhile
        self.state.faults.resume()
        for session in list(self._sessions):
            session.flush_held()

    async def restart(self, down_seconds: float) -> None:
        """Close the listener and all sockets, stay down ``down_seconds``, listen again on the same port."""
        await self._close_listener()
        await self._drop_all()
        await asyncio.sleep(down_seconds)
        await self._listen(self.port)
        log.info("TWS simulator back on %s:%d after a %.1f s restart", self.host, self.port, down_seconds)

    async def connectivity_lost(self, seconds: float) -> None:
        """Send 1100 to every client, stop data for ``seconds``, then send 1102 (data maintained)."""
        self.state.faults.connectivity_lost = True
        for session in self.feed.sessions():
            session.send(m.error(-1, 1100, CONNECTIVITY_LOST))
        try:
            await asyncio.sleep(seconds)
        finally:
            self.state.faults.connectivity_lost = False
            for session in self.feed.sessions():
                session.send(m.error(-1, 1102, CONNECTIVITY_RESTORED))

    # ------------------------------------------------------------------ introspection
    def connected_client_ids(self) -> list[int]:
        """Client ids of the connected, started clients."""
        return sorted(s.client_id for s in self._sessions if s.client_id is not None and not s.closed.is_set())

    def subscription_counts(self) -> dict[str, int]:
        """Active subscriptions by kind, over all connections."""
        counts = {
            "mkt_data": 0,
            "depth": 0,
            "tick_by_tick": 0,
            "realtime_bars": 0,
            "historical_updates": 0,
            "pnl": 0,
            "account_updates": 0,
            "positions": 0,
        }
        for s in self.feed.sessions():
            kinds = [q.kind for q in s.quote_subs.values()] + [b.kind for b in s.bar_subs.values()]
            for kind in kinds:
                counts[kind] = counts.get(kind, 0) + 1
            counts["pnl"] += len(s.pnl_subs)
            counts["account_updates"] += int(s.account_updates)
            counts["positions"] += int(s.positions_stream)
        return counts

    @property
    def orders(self) -> list[SimOrder]:
        """Every order of every client (working and done)."""
        return list(self.state.orders)

    @property
    def executions(self) -> list[Execution]:
        """Every execution, oldest first."""
        return list(self.state.orders.executions)

    @property
    def account(self) -> SimAccount:
        """The simulated account."""
        return self.state.account

    def status(self) -> dict[str, object]:
        """A JSON-friendly summary (the control server's ``/status``)."""
        v = self.state.valuation()
        return {
            "port": self.port,
            "clients": self.connected_client_ids(),
            "subscriptions": self.subscription_counts(),
            "orders": len(self.state.orders.orders),
            "working_orders": len(self.state.orders.working()),
            "executions": len(self.state.orders.executions),
            "net_liquidation": round(v.net_liquidation, 2),
            "stalled": self.state.faults.stalled,
            "connectivity_lost": self.state.faults.connectivity_lost,
        }


async def run_forever(
    host: str,
    port: int,
    config: TwsSimConfig,
    market: SimulatedMarket,
    control_port: int | None = None,
    clock: Clock | None = None,
) -> None:
    """Serve until cancelled (the CLI entry point)."""
    sim = TwsSimulator(market, config, clock)
    await sim.start(host, port, control_port)
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()
