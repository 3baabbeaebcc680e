"""The IBKR order venue: placement and cancel through ib_insync, paced, keyed by ``orderRef``.

The idempotency token travels as the order's ``orderRef``, so every status change and
execution maps to our order, live or replayed. ib_insync replays the executions and
completed orders of a reconnect without emitting events, so after every connect the
gateway syncs: it asks TWS for today's executions and completed orders and hands each one
of ours, with the open orders' statuses, to the router (which counts each execution once
and ignores statuses it already has). Fills, cancels and DAY expiries that happened while
the socket was down, or while this process was not running, reach the ledger that way.

Placements wait for the shared Redis pacing budget (``ibkr.pacing.orders_per_s``, metered
in ``ibkr_pacing_wait_seconds{kind="orders"}``). Qualification waits at most
``ibkr.request_timeout_s`` and is cached per contract, so an order never waits on an
answer a dead socket will not give.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from ib_insync import IB, Contract, Fill, LimitOrder, MarketOrder, Option, Stock, Trade
from ib_insync.util import UNSET_DOUBLE
from redis.exceptions import RedisError

from quanticity.execution.order_router import OrderRejectedError, OrderRequest, OrderRouter
from quanticity.ibkr.connection_manager import IbkrConnection
from quanticity.ibkr.contracts import ContractError, qualify, underlying_contract
from quanticity.ibkr.pacing import Pace, no_pacing

log = structlog.get_logger(__name__)

NEW_YORK = ZoneInfo("America/New_York")


def order_contract(request: OrderRequest) -> Contract:
    """The ib_insync contract of an order request (SMART routed)."""
    if request.sec_type == "OPT":
        assert request.expiry is not None and request.strike is not None and request.right is not None  # noqa: S101
        trading_class = "SPXW" if request.symbol == "SPX" else ""
        return Option(
            request.symbol,
            f"{request.expiry:%Y%m%d}",
            float(request.strike),
            request.right,
            "SMART",
            tradingClass=trading_class,
            currency="USD",
        )
    contract = underlying_contract(request.symbol)
    return contract if contract.secType == "STK" else Stock(request.symbol, "SMART", "USD")


class IbkrOrderGateway:
    """Places and cancels orders on TWS and feeds the router its callbacks.

    Args:
        conn: the execution role's supervised connection.
        pace_orders: waits for a token of the shared ``orders`` bucket before each placement
            (:class:`quanticity.ibkr.pacing.Pacer`); qualification uses the connection's pace.
    """

    def __init__(self, conn: IbkrConnection, pace_orders: Pace = no_pacing) -> None:
        self.conn = conn
        self.pace_orders = pace_orders
        self.router: OrderRouter | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._qualified: dict[tuple[Any, ...], Contract] = {}

    def attach(self, router: OrderRouter) -> None:
        """Route TWS order callbacks to ``router``; sync the order state after every connect."""
        self.router = router
        ib = self.conn.ib
        ib.orderStatusEvent += self._on_status
        ib.execDetailsEvent += self._on_exec
        self.conn.set_restorer("orders-sync", self.sync)

    async def sync(self, ib: IB) -> None:
        """Hand the router TWS's view of our orders: executions, then final and open statuses.

        Runs as a restorer after every connect (the first one too: orders may have filled
        while the process was down). A ledger that cannot be reached is logged and counted;
        the next connect syncs again.
        """
        router = self.router
        if router is None:
            return
        timeout = self.conn.settings.request_timeout_s
        async with asyncio.timeout(timeout):
            fills: list[Fill] = await ib.reqExecutionsAsync()
        await self.conn.pace(1)
        async with asyncio.timeout(timeout):
            completed: list[Trade] = await ib.reqCompletedOrdersAsync(apiOnly=True)
        known: set[str] = set()
        try:
            for fill in fills:
                if fill.execution.orderRef:
                    known.add(fill.execution.orderRef)
                    await self._apply_exec(router, fill.execution.orderRef, fill)
            for trade in [*completed, *ib.openTrades()]:
                if trade.order.orderRef:
                    known.add(trade.order.orderRef)
                    await self._apply_status(router, trade)
            unknown = await router.settle_unknown(known, datetime.now(NEW_YORK).date())
        except RedisError as exc:
            self.conn.metrics.error_events.labels("order_sync").inc()
            log.error("order_sync_failed", error=repr(exc), action="the next reconnect syncs again")
            return
        log.info("orders_synced", executions=len(fills), completed=len(completed), ours=len(known), unknown=unknown)

    async def place(self, request: OrderRequest, token: str) -> int:
        """Place ``request`` with ``orderRef=token``; returns TWS's order id.

        Raises:
            OrderRejectedError: the contract does not qualify, or TWS is not connected.
        """
        if not self.conn.is_connected:
            raise OrderRejectedError(
                f"order {token}: not connected to TWS", operator_action="check the execution role's TWS connection"
            )
        contract = await self._qualify(order_contract(request), token)
        action = "BUY" if request.side == "buy" else "SELL"
        order: MarketOrder | LimitOrder
        if request.limit_price is None:
            order = MarketOrder(action, request.quantity, orderRef=token, tif="DAY")
        else:
            order = LimitOrder(action, request.quantity, float(request.limit_price), orderRef=token, tif="DAY")
        if request.account:
            order.account = request.account
        await self.pace_orders(1)
        trade = self.conn.ib.placeOrder(contract, order)
        return int(trade.order.orderId)

    async def _qualify(self, contract: Contract, token: str) -> Contract:
        """``contract`` with its conId, from the cache or TWS (at most ``request_timeout_s``)."""
        key = (
            contract.secType,
            contract.symbol,
            contract.lastTradeDateOrContractMonth,
            contract.strike,
            contract.right,
            contract.exchange,
            contract.tradingClass,
        )
        cached = self._qualified.get(key)
        if cached is not None:
            return cached
        timeout = self.conn.settings.request_timeout_s
        try:
            async with asyncio.timeout(timeout):
                await qualify(self.conn.ib, [contract], self.conn.pace)
        except ContractError as exc:
            raise OrderRejectedError(f"order {token}: {exc.message}") from exc
        except TimeoutError:
            raise OrderRejectedError(
                f"order {token}: TWS did not qualify {contract.secType} {contract.symbol} within {timeout:g} s",
                operator_action="check the execution role's TWS connection (ibkr_connection_state)",
            ) from None
        except ConnectionError as exc:
            raise OrderRejectedError(
                f"order {token}: the TWS connection broke while qualifying {contract.symbol}: {exc}",
                operator_action="the order was not placed; submit the signal again once reconnected",
            ) from exc
        self._qualified[key] = contract
        return contract

    async def find(self, token: str) -> int | None:
        """TWS's order id of an order with ``orderRef == token`` (open, done, or filled today)."""
        for trade in self.conn.ib.trades():
            if trade.order.orderRef == token:
                return int(trade.order.orderId)
        for fill in self.conn.ib.fills():
            if fill.execution.orderRef == token:
                return int(fill.execution.orderId)
        return None

    async def cancel(self, broker_order_id: int) -> None:
        """Cancel the open order with TWS id ``broker_order_id``.

        Raises:
            OrderRejectedError: no such open order.
        """
        for trade in self.conn.ib.openTrades():
            if trade.order.orderId == broker_order_id:
                self.conn.ib.cancelOrder(trade.order)
                return
        raise OrderRejectedError(f"no open order with TWS id {broker_order_id}")

    def _spawn(self, coro: Any, what: str) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                self.conn.metrics.error_events.labels("order_callback").inc()
                log.error("order_callback_failed", what=what, error=repr(t.exception()))

        task.add_done_callback(done)

    def _on_status(self, trade: Trade) -> None:
        if self.router is None or not trade.order.orderRef:
            return
        self._spawn(self._apply_status(self.router, trade), "status")

    def _on_exec(self, trade: Trade, fill: Fill) -> None:
        if self.router is None:
            return
        ref = trade.order.orderRef or fill.execution.orderRef
        if not ref:
            return
        self._spawn(self._apply_exec(self.router, ref, fill), "fill")

    @staticmethod
    async def _apply_status(router: OrderRouter, trade: Trade) -> None:
        status = trade.orderStatus
        filled = status.filled
        if not filled and trade.order.filledQuantity not in (None, UNSET_DOUBLE):
            filled = trade.order.filledQuantity  # a completed order carries its fill on the order
        await router.on_status(trade.order.orderRef, status.status, filled, status.avgFillPrice)

    @staticmethod
    async def _apply_exec(router: OrderRouter, ref: str, fill: Fill) -> None:
        execution = fill.execution
        when = execution.time if execution.time.tzinfo else execution.time.replace(tzinfo=UTC)
        await router.on_fill(ref, execution.execId, execution.shares, execution.price, when)
