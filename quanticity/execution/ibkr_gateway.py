"""The IBKR order venue: placement and cancel through ib_insync, paced, keyed by ``orderRef``.

The idempotency token travels as the order's ``orderRef``, so after a reconnect (when
ib_insync rebuilds its trades from TWS's open orders and executions) every status change
and execution still maps to our order. Placements wait for the shared Redis pacing budget
(``ibkr.pacing.orders_per_s``, metered in ``ibkr_pacing_wait_seconds{kind="orders"}``).
"""

from __future__ import annotations

import asyncio
from datetime import UTC
from typing import Any

import structlog
from ib_insync import Contract, LimitOrder, MarketOrder, Option, Stock, Trade

from quanticity.execution.order_router import OrderRejectedError, OrderRequest, OrderRouter
from quanticity.ibkr.connection_manager import IbkrConnection
from quanticity.ibkr.contracts import ContractError, qualify, underlying_contract
from quanticity.ibkr.pacing import Pace, no_pacing

log = structlog.get_logger(__name__)


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

    def attach(self, router: OrderRouter) -> None:
        """Route TWS order callbacks to ``router``."""
        self.router = router
        ib = self.conn.ib
        ib.orderStatusEvent += self._on_status
        ib.execDetailsEvent += self._on_exec

    async def place(self, request: OrderRequest, token: str) -> int:
        """Place ``request`` with ``orderRef=token``; returns TWS's order id.

        Raises:
            OrderRejectedError: the contract does not qualify, or TWS is not connected.
        """
        if not self.conn.is_connected:
            raise OrderRejectedError(
                f"order {token}: not connected to TWS", operator_action="check the execution role's TWS connection"
            )
        contract = order_contract(request)
        try:
            await qualify(self.conn.ib, [contract], self.conn.pace)
        except ContractError as exc:
            raise OrderRejectedError(f"order {token}: {exc.message}") from exc
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
        status = trade.orderStatus
        self._spawn(
            self.router.on_status(trade.order.orderRef, status.status, status.filled, status.avgFillPrice), "status"
        )

    def _on_exec(self, trade: Trade, fill: Any) -> None:
        if self.router is None:
            return
        ref = trade.order.orderRef or fill.execution.orderRef
        if not ref:
            return
        execution = fill.execution
        when = execution.time if execution.time.tzinfo else execution.time.replace(tzinfo=UTC)
        self._spawn(self.router.on_fill(ref, execution.execId, execution.shares, execution.price, when), "fill")
