"""The simulator's shared state: market, contracts, quotes, account and orders, and how events
reach the connected clients.

One ``SimState`` outlives every connection (and a ``restart`` fault): orders, executions
and the account belong to it, sessions come and go. Market computations run in two
single-thread executors, one for underlyings and bars, one for option chains (whose
first use may compile the analytics kernels for seconds), so the event loop never
blocks and stock quotes never wait behind an option chain.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, time, timedelta
from typing import Protocol, TypeVar

from quanticity.simulation.calendar import REGULAR_CLOSE_S, SESSION_SECONDS, et_datetime
from quanticity.simulation.market import SimulatedMarket
from quanticity.simulation.tws import messages as m
from quanticity.simulation.tws import order_messages as om
from quanticity.simulation.tws.account import SimAccount, Valuation, account_values
from quanticity.simulation.tws.bars import BarSource
from quanticity.simulation.tws.config import TwsSimConfig
from quanticity.simulation.tws.contracts import ContractUniverse, SimContract
from quanticity.simulation.tws.faults import FaultState
from quanticity.simulation.tws.messages import Msg
from quanticity.simulation.tws.orders import OrderBook, OrderEvent
from quanticity.simulation.tws.quotes import Quote, QuoteEngine

__all__ = ["Clock", "Peer", "SimState", "wall_clock"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
T = TypeVar("T")


def wall_clock() -> datetime:
    """The default clock: aware UTC wall time."""
    return datetime.now(UTC)


class Peer(Protocol):
    """What the shared state needs of a connected session."""

    client_id: int | None
    account_updates: bool
    positions_stream: bool

    def send_many(self, msgs: Iterable[Msg]) -> None: ...

    def send_account(self, msgs: Iterable[Msg], force: bool = False) -> None: ...


def _exchange_of(contract: SimContract) -> str:
    if contract.sec_type == "OPT":
        return "CBOE"
    if contract.sec_type == "CASH":
        return "IDEALPRO"
    return {"NASDAQ": "ISLAND"}.get(contract.primary_exchange, contract.primary_exchange or "ARCA")


class SimState:
    """Everything the simulator knows, shared by its sessions.

    Args:
        market: the simulated market prices come from.
        config: simulator configuration.
        clock: the simulator's notion of now (aware UTC).
    """

    def __init__(self, market: SimulatedMarket, config: TwsSimConfig, clock: Clock) -> None:
        self.market = market
        self.config = config
        self.clock = clock
        self.universe = ContractUniverse(market)
        self.quotes = QuoteEngine(market)
        self.bars = BarSource(market, self.quotes)
        self.account = SimAccount(config)
        self.orders = OrderBook(config, self.account, _exchange_of)
        self.faults = FaultState()
        self.peers: set[Peer] = set()
        self.latest: dict[int, Quote] = {}  # live quotes by conId, refreshed by the feed
        self._executors = {
            "underlying": ThreadPoolExecutor(max_workers=1, thread_name_prefix="tws-sim-und"),
            "option": ThreadPoolExecutor(max_workers=1, thread_name_prefix="tws-sim-opt"),
        }

    def session_close(self, t: datetime, outside_rth: bool) -> datetime:
        """When a DAY order placed at ``t`` expires: 16:00 ET of its session (20:00 with ``outside_rth``)."""
        k, s = self.market.calendar.session_second(t)
        close_s = SESSION_SECONDS if outside_rth else REGULAR_CLOSE_S
        day = self.market.calendar.day(k if s < close_s else k + 1)
        return et_datetime(day, time(4)) + timedelta(seconds=close_s)

    def now(self) -> datetime:
        """The simulator clock."""
        return self.clock()

    def day_index(self, t: datetime | None = None) -> int:
        """The trading day ``t`` (default now) belongs to."""
        return self.market.calendar.session_second(t or self.clock())[0]

    async def run(self, fn: Callable[[], T], option: bool = False) -> T:
        """Run a market computation in the underlying (or option) worker thread."""
        executor = self._executors["option" if option else "underlying"]
        return await asyncio.get_running_loop().run_in_executor(executor, fn)

    async def quote(self, contract: SimContract, t: datetime | None = None) -> Quote:
        """A fresh quote of ``contract`` (live ones are also remembered in ``latest``)."""
        at = t or self.clock()
        q = await self.run(lambda: self.quotes.quote(contract, at), option=contract.sec_type == "OPT")
        if t is None:
            self.latest[contract.con_id] = q
        return q

    def shutdown(self) -> None:
        """Stop the worker threads (pending computations are dropped)."""
        for executor in self._executors.values():
            executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ routing
    def peer(self, client_id: int) -> Peer | None:
        """The connected session of ``client_id``, if any."""
        return next((p for p in self.peers if p.client_id == client_id), None)

    def valuation(self) -> Valuation:
        """The account marked with the latest quotes."""
        return self.account.value(self.latest, self.day_index())

    def route(self, events: list[OrderEvent]) -> None:
        """Send order events to the owning clients and fills to the account streams."""
        filled: list[SimContract] = []
        for event in events:
            o = event.order
            msgs: list[Msg]
            if event.kind == "status":
                msgs = [om.open_order(o), om.order_status(o)]
            elif event.kind == "fill":
                assert event.execution is not None
                msgs = [om.exec_details(-1, event.execution)]
                filled.append(o.contract)
            elif event.kind == "commission":
                assert event.execution is not None
                msgs = [om.commission_report(event.execution)]
            else:
                msgs = [om.order_status(o), m.error(o.order_id, 202, "Order Canceled - reason:")]
            owner = self.peer(o.client_id)
            if owner is not None:
                owner.send_many(msgs)
        if filled:
            self.push_account(filled)

    def push_account(self, changed: list[SimContract] | None = None) -> None:
        """Send account values and portfolio rows (all, or the ``changed`` contracts) to subscribers."""
        listeners = [p for p in self.peers if p.account_updates or p.positions_stream]
        if not listeners:
            return
        v = self.valuation()
        con_ids = None if changed is None else {c.con_id for c in changed}
        updates = account_messages(v, self.config.account, self.clock(), con_ids)
        positions = [
            m.position(self.config.account, h.contract.fields11(h.contract.exchange), h.quantity, h.avg_cost)
            for h in v.holdings
            if con_ids is not None and h.contract.con_id in con_ids
        ]
        for p in listeners:
            if p.account_updates:
                p.send_account(updates)
            if p.positions_stream and positions:
                p.send_many(positions)


def portfolio_message(v: Valuation, con_id: int, account: str) -> Msg | None:
    """updatePortfolio for one holding of ``v``."""
    h = v.holding(con_id)
    if h is None:
        return None
    c = h.contract
    return m.update_portfolio(
        c.fields11(c.primary_exchange),
        h.quantity,
        h.mark,
        h.market_value,
        h.avg_cost,
        h.unrealized,
        h.realized,
        account,
    )


def account_messages(v: Valuation, account: str, now: datetime, con_ids: set[int] | None = None) -> list[Msg]:
    """updateAccountValue rows, updatePortfolio rows (all or ``con_ids``), updateAccountTime."""
    out = [m.update_account_value(k, value, cur, account) for k, value, cur in account_values(v, account)]
    for h in v.holdings:
        if con_ids is None and h.quantity == 0:
            continue
        if con_ids is None or h.contract.con_id in con_ids:
            msg = portfolio_message(v, h.contract.con_id, account)
            if msg is not None:
                out.append(msg)
    out.append(m.update_account_time(now.astimezone(UTC).strftime("%H:%M")))
    return out
