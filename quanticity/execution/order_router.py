"""The order router: idempotent submission, queued acknowledgements, order and fill events.

``submit(request)`` derives an idempotency token from the request's signal id and claims it
in the ledger (Redis ``SET NX``). The first submission places the order through the
gateway with the token as ``orderRef``; a resubmission of the same signal gets the existing
order's ack, flagged ``duplicate``, and places nothing. A claim whose placement never
happened (a crash between the two) is resolved by asking the gateway for an order with
that ``orderRef`` first, so even then TWS never sees the signal twice.

Acknowledgements and every later status change reach the registered listeners through a
queue (one dispatcher task), so a slow listener never blocks the gateway's callbacks.
Status changes and fills are also published as ``OrderEvent`` / ``Fill`` records.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Literal, Protocol

import structlog

from quanticity.errors import QuanticityError
from quanticity.ibkr.metrics import IbkrMetrics
from quanticity.schemas import Fill, OrderEvent, Record, stable_id
from quanticity.settings.model import Mode
from quanticity.storage.ibkr_events import FillRecord, OrderLedger

log = structlog.get_logger(__name__)

Status = Literal["pending", "submitted", "filled", "cancelled", "rejected"]
DONE: frozenset[str] = frozenset({"filled", "cancelled", "rejected"})
# TWS order states → ours (ib_insync OrderStatus names).
TWS_STATUS: dict[str, Status] = {
    "PendingSubmit": "pending",
    "ApiPending": "pending",
    "PreSubmitted": "submitted",
    "Submitted": "submitted",
    "PendingCancel": "submitted",
    "Filled": "filled",
    "Cancelled": "cancelled",
    "ApiCancelled": "cancelled",
    "Inactive": "rejected",
}


class OrderRejectedError(QuanticityError):
    """The gateway refused an order before it reached the market."""


@dataclass(frozen=True)
class OrderRequest:
    """What to trade, for which signal. Prices are Decimal, never floats."""

    signal_id: str
    symbol: str
    side: Literal["buy", "sell"]
    quantity: int
    limit_price: Decimal | None = None  # None = market order
    sec_type: Literal["STK", "OPT"] = "STK"
    expiry: date | None = None
    strike: Decimal | None = None
    right: Literal["C", "P"] | None = None
    account: str | None = None

    def __post_init__(self) -> None:
        if self.quantity <= 0:
            raise ValueError(f"quantity must be positive, got {self.quantity}")
        if self.limit_price is not None and self.limit_price <= 0:
            raise ValueError(f"limit_price must be positive, got {self.limit_price}")
        if self.sec_type == "OPT" and (self.expiry is None or self.strike is None or self.right is None):
            raise ValueError("an option order needs expiry, strike and right")

    @property
    def token(self) -> str:
        """The idempotency token (``orderRef``): the same signal always gives the same token."""
        return "q-" + stable_id("order", self.signal_id)


@dataclass(frozen=True)
class OrderAck:
    """The router's answer to a submission or a later status change."""

    order_id: str
    token: str
    status: Status
    broker_order_id: int | None = None
    duplicate: bool = False
    filled: int = 0
    avg_price: Decimal | None = None
    reason: str = ""
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


class OrderGateway(Protocol):
    """Where orders go (TWS through ib_insync, or any other venue)."""

    async def place(self, request: OrderRequest, token: str) -> int:
        """Place the order with ``token`` as its reference; return the broker's order id."""

    async def find(self, token: str) -> int | None:
        """The broker order id of an order carrying ``token``, if the broker has one."""

    async def cancel(self, broker_order_id: int) -> None:
        """Ask the broker to cancel."""


AckListener = Callable[[OrderAck], Awaitable[None] | None]
Publish = Callable[[Record], Awaitable[None]]


class OrderRouter:
    """Submits orders idempotently and turns broker callbacks into acks, events and fills.

    Args:
        gateway: the order venue.
        ledger: the Redis order ledger.
        publish: sends a record to its topic (orders / fills).
        metrics: IBKR metrics.
        run_id, mode: envelope of the published records.
    """

    def __init__(
        self,
        gateway: OrderGateway,
        ledger: OrderLedger,
        publish: Publish,
        metrics: IbkrMetrics,
        run_id: str,
        mode: Mode,
    ) -> None:
        self.gateway = gateway
        self.ledger = ledger
        self.publish = publish
        self.metrics = metrics
        self.run_id = run_id
        self.mode: Mode = mode
        self._listeners: list[AckListener] = []
        self._acks: asyncio.Queue[OrderAck] = asyncio.Queue()
        self._dispatcher: asyncio.Task[None] | None = None
        self._placed_at: dict[str, float] = {}

    def register_ack_listener(self, listener: AckListener) -> None:
        """Call ``listener(ack)`` for every ack and status change (from one dispatcher task)."""
        self._listeners.append(listener)
        if self._dispatcher is None:
            self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch(), name="order-acks")

    async def close(self) -> None:
        """Stop the ack dispatcher after the queued acks are delivered."""
        if self._dispatcher is not None:
            await self._acks.join()
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
            self._dispatcher = None

    async def _dispatch(self) -> None:
        while True:
            ack = await self._acks.get()
            try:
                for listener in self._listeners:
                    result = listener(ack)
                    if inspect.isawaitable(result):
                        await result
            except Exception as exc:  # noqa: BLE001 - a listener's bug must not stop later acks
                self.metrics.error_events.labels("ack_listener").inc()
                log.error("order_ack_listener_failed", order_id=ack.order_id, error=repr(exc))
            finally:
                self._acks.task_done()

    def _ack(self, ack: OrderAck) -> OrderAck:
        self._acks.put_nowait(ack)
        return ack

    async def submit(self, request: OrderRequest) -> OrderAck:
        """Place ``request`` once per signal id and return its ack.

        Raises:
            OrderRejectedError: the gateway refused it (the order is recorded as rejected).
            redis.exceptions.RedisError: the ledger is unreachable; nothing was placed.
        """
        token = request.token
        order_id = token
        existing = await self.ledger.claim(
            token,
            order_id,
            {
                "symbol": request.symbol,
                "side": request.side,
                "quantity": request.quantity,
                "limit_price": request.limit_price,
                "sec_type": request.sec_type,
                "expiry": request.expiry.isoformat() if request.expiry else None,
                "strike": request.strike,
                "right": request.right,
                "signal_id": request.signal_id,
                "account": request.account,
                "status": "pending",
            },
        )
        if existing is not None:
            order = await self.ledger.load(existing)
            broker = order.get("broker_order_id")
            if broker or order.get("status") in DONE:
                self.metrics.orders_deduplicated.inc()
                log.warning("order_duplicate_signal", signal_id=request.signal_id, order_id=existing)
                return self._ack(self._ack_from(existing, order, duplicate=True))
            # Claimed but never placed (the process died in between): the broker decides.
            found = await self.gateway.find(token)
            if found is not None:
                await self.ledger.update(existing, broker_order_id=found, status="submitted")
                self.metrics.orders_deduplicated.inc()
                return self._ack(OrderAck(existing, token, "submitted", found, duplicate=True))
        await self._publish_event(request, order_id, "pending")
        self._placed_at[token] = time.perf_counter()
        try:
            broker_id = await self.gateway.place(request, token)
        except OrderRejectedError as exc:
            await self.ledger.update(order_id, status="rejected", reason=exc.message)
            await self._publish_event(request, order_id, "rejected", exc.message)
            self._ack(OrderAck(order_id, token, "rejected", reason=exc.message))
            raise
        self.metrics.orders_submitted.labels("execution").inc()
        await self.ledger.update(order_id, broker_order_id=broker_id, status="submitted")
        await self._publish_event(request, order_id, "submitted")
        log.info("order_submitted", order_id=order_id, broker_order_id=broker_id, signal_id=request.signal_id)
        return self._ack(OrderAck(order_id, token, "submitted", broker_id))

    async def cancel(self, order_id: str) -> None:
        """Ask the broker to cancel ``order_id``; the Cancelled status arrives as an ack."""
        order = await self.ledger.load(order_id)
        broker = order.get("broker_order_id")
        if not broker:
            raise OrderRejectedError(f"order {order_id} has no broker order id to cancel")
        await self.gateway.cancel(int(broker))

    def _ack_from(self, order_id: str, order: dict[str, str], duplicate: bool) -> OrderAck:
        status = order.get("status", "pending")
        avg = order.get("avg_price")
        return OrderAck(
            order_id,
            order.get("token", order_id),
            status if status in TWS_STATUS.values() else "pending",  # type: ignore[arg-type]
            int(order["broker_order_id"]) if order.get("broker_order_id") else None,
            duplicate=duplicate,
            filled=int(order.get("filled", "0") or 0),
            avg_price=Decimal(avg) if avg else None,
        )

    async def settle_unknown(self, known_tokens: set[str], today: date) -> list[str]:
        """Close open orders the broker does not know after a full sync; returns their ids.

        ``known_tokens`` are the tokens of every order the broker reported (open, completed,
        or with executions). An open order of ours with a broker id that is not among them
        never reached the broker (sent as the connection broke: ``rejected``) or expired on
        an earlier day while we were away (``cancelled``). Orders claimed but not yet placed
        are left to their submission.
        """
        settled = []
        for order_id in await self.ledger.open_orders():
            order = await self.ledger.load(order_id)
            token = order.get("token", order_id)
            if not order.get("broker_order_id") or token in known_tokens or order.get("status") in DONE:
                continue
            created = order.get("created", "")
            earlier_day = bool(created) and datetime.fromisoformat(created).date() < today
            status: Status = "cancelled" if earlier_day else "rejected"
            reason = (
                "expired: a DAY order of an earlier session that TWS no longer reports"
                if earlier_day
                else "lost: TWS does not know this order after the reconnect (it was sent as the connection "
                "broke); nothing was placed, submit a new signal to trade it"
            )
            await self.ledger.update(order_id, status=status, reason=reason)
            self.metrics.error_events.labels("order_unknown_to_tws").inc()
            log.error("order_unknown_to_tws", order_id=order_id, status=status, reason=reason)
            await self._publish_event_from(order, order_id, status)
            self._ack(OrderAck(order_id, token, status, _int(order.get("broker_order_id")), reason=reason))
            settled.append(order_id)
        return settled

    # ------------------------------------------------------------------ broker callbacks
    async def on_status(self, token: str, tws_status: str, filled: float, avg_price: float) -> None:
        """A status change from the broker for the order carrying ``token``."""
        order_id = await self.ledger.order_for_token(token)
        if order_id is None:
            return  # not ours (another client's order, or placed by hand in TWS)
        status = TWS_STATUS.get(tws_status)
        if status is None:
            return
        order = await self.ledger.load(order_id)
        if order.get("status") == status:
            return
        avg = Decimal(str(round(avg_price, 4))) if avg_price and avg_price > 0 else None
        await self.ledger.update(order_id, status=status, avg_price=avg)
        self.metrics.order_status.labels(tws_status).inc()
        if status == "filled" and token in self._placed_at:
            self.metrics.submit_to_fill_ms.observe((time.perf_counter() - self._placed_at.pop(token)) * 1000.0)
        await self._publish_event_from(order, order_id, status)
        self._ack(
            OrderAck(order_id, token, status, _int(order.get("broker_order_id")), filled=int(filled), avg_price=avg)
        )

    async def on_fill(
        self, token: str, exec_id: str, quantity: float, price: float, when: datetime, commission: float | None = None
    ) -> None:
        """An execution for the order carrying ``token`` (de-duplicated by ``exec_id``)."""
        order_id = await self.ledger.order_for_token(token)
        if order_id is None:
            return
        fill = FillRecord(exec_id, order_id, int(quantity), Decimal(str(round(price, 4))), when)
        if not await self.ledger.apply_fill(fill):
            return  # replayed after a reconnect: counted once
        self.metrics.fills.inc()
        order = await self.ledger.load(order_id)
        record = Fill(
            symbol=order.get("symbol", "UNKNOWN"),
            exec_id=exec_id,
            order_id=order_id,
            signal_id=order.get("signal_id"),
            side="buy" if order.get("side") == "buy" else "sell",
            quantity=int(quantity),
            price=fill.price,
            commission=Decimal(str(round(commission, 4))) if commission and commission > 0 else Decimal("0"),
            record_id=stable_id("fill", exec_id),
            event_time=when,
            source="ibkr",
            run_id=self.run_id,
            mode=self.mode,
        )
        await self.publish(record)

    async def _publish_event(self, request: OrderRequest, order_id: str, status: Status, reason: str = "") -> None:
        await self.publish(
            OrderEvent(
                symbol=request.symbol,
                order_id=order_id,
                signal_id=request.signal_id,
                account=request.account,
                side=request.side,
                quantity=request.quantity,
                limit_price=request.limit_price,
                status=status,
                reason=reason,
                record_id=stable_id("order-event", order_id, status),
                event_time=datetime.now(UTC),
                source="ibkr",
                run_id=self.run_id,
                mode=self.mode,
            )
        )

    async def _publish_event_from(self, order: dict[str, str], order_id: str, status: Status) -> None:
        limit = order.get("limit_price")
        await self.publish(
            OrderEvent(
                symbol=order.get("symbol", "UNKNOWN"),
                order_id=order_id,
                signal_id=order.get("signal_id"),
                account=order.get("account"),
                side="buy" if order.get("side") == "buy" else "sell",
                quantity=int(order.get("quantity", "1")),
                limit_price=Decimal(limit) if limit else None,
                status=status,
                record_id=stable_id("order-event", order_id, status),
                event_time=datetime.now(UTC),
                source="ibkr",
                run_id=self.run_id,
                mode=self.mode,
            )
        )


def _int(value: str | None) -> int | None:
    return int(value) if value else None
