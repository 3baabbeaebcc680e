"""The simulated order book: order state machines, fills, executions, keyed by (clientId, orderId).

Orders outlive the connection that placed them: a client that reconnects with the same
client id sees its open orders and the day's executions again. Each state change is
returned as an ``OrderEvent`` that the server turns into TWS messages for the owning
client (tws.md §4.8):

    placed:  PreSubmitted -> Submitted [-> fill]
    fill:    execDetails -> Filled (or Submitted while partially filled) -> commissionReport
    cancel:  Cancelled (+ error 202 sent by the server)

Child orders (``parentId``) stay PreSubmitted until their parent fills and are
cancelled with it; a fill cancels the other working orders of its OCA group.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Final

from quanticity.simulation.tws.account import SimAccount
from quanticity.simulation.tws.config import TwsSimConfig
from quanticity.simulation.tws.contracts import SimContract
from quanticity.simulation.tws.fill_model import OrderTerms, commission, decide
from quanticity.simulation.tws.protocol import ContractQuery
from quanticity.simulation.tws.quotes import Quote

__all__ = [
    "ACTIVE",
    "DONE",
    "Execution",
    "OrderBook",
    "OrderEvent",
    "OrderStatus",
    "OrderTicket",
    "SimOrder",
]

log = logging.getLogger(__name__)


class OrderStatus:
    """TWS order status names."""

    PRE_SUBMITTED: Final = "PreSubmitted"
    SUBMITTED: Final = "Submitted"
    FILLED: Final = "Filled"
    CANCELLED: Final = "Cancelled"
    API_CANCELLED: Final = "ApiCancelled"
    INACTIVE: Final = "Inactive"


ACTIVE = frozenset({OrderStatus.PRE_SUBMITTED, OrderStatus.SUBMITTED})
DONE = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.API_CANCELLED, OrderStatus.INACTIVE})


@dataclass(frozen=True, slots=True)
class OrderTicket:
    """A parsed placeOrder (the fields the simulator acts on)."""

    order_id: int
    contract: ContractQuery
    action: str
    quantity: Decimal | None
    order_type: str
    limit: Decimal | None
    aux: Decimal | None
    tif: str
    oca_group: str
    account: str
    order_ref: str
    transmit: bool
    parent_id: int
    outside_rth: bool
    good_till_date: str
    trail_stop: Decimal | None
    trail_percent: Decimal | None
    what_if: bool


@dataclass(slots=True)
class SimOrder:
    """One order's current state and its append-only log of (time, status, note)."""

    client_id: int
    order_id: int
    perm_id: int
    contract: SimContract
    action: str
    quantity: Decimal
    order_type: str
    limit: Decimal | None
    aux: Decimal | None
    tif: str
    oca_group: str
    account: str
    order_ref: str
    parent_id: int
    outside_rth: bool
    trail_stop: Decimal | None
    trail_percent: Decimal | None
    status: str = OrderStatus.PRE_SUBMITTED
    filled: Decimal = Decimal(0)
    avg_fill_price: Decimal = Decimal(0)
    last_fill_price: Decimal = Decimal(0)
    triggered: bool = False
    completed_at: datetime | None = None
    expires_at: datetime | None = None  # DAY orders: the close of the session they work in
    log: list[tuple[datetime, str, str]] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        """Quantity still to fill (0 once done)."""
        return Decimal(0) if self.status in DONE else self.quantity - self.filled

    @property
    def key(self) -> tuple[int, int]:
        """(clientId, orderId)."""
        return self.client_id, self.order_id

    def set_status(self, status: str, now: datetime, note: str = "") -> None:
        """Move to ``status`` and log the transition."""
        self.status = status
        self.log.append((now, status, note))
        if status in DONE:
            self.completed_at = now

    def terms(self) -> OrderTerms:
        """The fill model's view of this order."""
        stop = self.trail_stop if self.order_type == "TRAIL" else self.aux
        trail_amount = self.aux if self.order_type == "TRAIL" and self.aux else None
        return OrderTerms(
            self.action == "BUY", self.order_type, self.limit, stop, trail_amount, self.trail_percent, self.triggered
        )


@dataclass(frozen=True, slots=True)
class Execution:
    """One fill, as execDetails and commissionReport report it."""

    exec_id: str
    time: datetime
    client_id: int
    order_id: int
    perm_id: int
    contract: SimContract
    side: str  # BOT / SLD
    shares: Decimal
    price: Decimal
    cum_qty: Decimal
    avg_price: Decimal
    order_ref: str
    account: str
    exchange: str
    commission: Decimal
    realized_pnl: Decimal | None


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """A change the owning client must hear about.

    ``kind``: ``status`` (openOrder + orderStatus), ``fill`` (execDetails), ``commission``
    (commissionReport), ``cancelled`` (orderStatus Cancelled + error 202).
    """

    kind: str
    order: SimOrder
    execution: Execution | None = None


def _event(kind: str, order: SimOrder, execution: Execution | None = None) -> OrderEvent:
    # A copy: the messages are built after the whole transition, and must show each step's state.
    return OrderEvent(kind, copy.copy(order), execution)


class OrderBook:
    """Every order of every client, and the day's executions.

    Args:
        config: commission rates, RTH rule.
        account: the account fills settle into.
        exchange_of: the venue an execution reports for a contract.
    """

    def __init__(self, config: TwsSimConfig, account: SimAccount, exchange_of: Callable[[SimContract], str]) -> None:
        self.config = config
        self.account = account
        self._exchange_of = exchange_of
        self.orders: dict[tuple[int, int], SimOrder] = {}
        self.executions: list[Execution] = []
        self._next_perm = 1_000_001
        self._exec_seq = 0

    def __iter__(self) -> Iterator[SimOrder]:
        return iter(self.orders.values())

    def working(self) -> list[SimOrder]:
        """Orders still working (PreSubmitted or Submitted)."""
        return [o for o in self.orders.values() if o.status in ACTIVE]

    def next_order_id(self, client_id: int) -> int:
        """nextValidId for ``client_id``: above every id it has used."""
        used = [oid for cid, oid in self.orders if cid == client_id]
        return max([self.config.first_order_id - 1, *used]) + 1

    def get(self, client_id: int, order_id: int) -> SimOrder | None:
        """The order with this key, if any."""
        return self.orders.get((client_id, order_id))

    # ------------------------------------------------------------------ placing
    def _register(self, order: SimOrder) -> None:
        order.perm_id = self._next_perm
        self._next_perm += 1
        self.orders[order.key] = order

    def place(self, order: SimOrder, q: Quote, now: datetime) -> list[OrderEvent]:
        """Accept a validated new order (its permId is assigned here) and match it against ``q``."""
        self._register(order)
        order.set_status(OrderStatus.PRE_SUBMITTED, now)
        events = [_event("status", order)]
        if self._held(order):
            return events
        order.set_status(OrderStatus.SUBMITTED, now)
        events.append(_event("status", order))
        return events + self._match(order, q, now, arrival=True)

    def reject(self, order: SimOrder, now: datetime, note: str) -> list[OrderEvent]:
        """Record an order TWS refused after accepting its id (it ends Cancelled at once)."""
        self._register(order)
        order.set_status(OrderStatus.CANCELLED, now, note)
        return [_event("status", order)]

    def modify(self, order: SimOrder, ticket: OrderTicket, q: Quote, now: datetime) -> list[OrderEvent]:
        """Apply a placeOrder for an existing working order."""
        assert ticket.quantity is not None
        order.quantity = max(ticket.quantity, order.filled)
        order.order_type, order.limit, order.aux = ticket.order_type, ticket.limit, ticket.aux
        order.tif, order.order_ref = ticket.tif or order.tif, ticket.order_ref
        order.trail_percent = ticket.trail_percent
        if ticket.trail_stop is not None:
            order.trail_stop = ticket.trail_stop
        order.log.append((now, order.status, "Modify"))
        events = [_event("status", order)]
        if order.status == OrderStatus.SUBMITTED:
            events += self._match(order, q, now, arrival=True)
        return events

    def cancel(self, order: SimOrder, now: datetime, status: str = OrderStatus.CANCELLED) -> list[OrderEvent]:
        """Cancel a working order and its children."""
        order.set_status(status, now)
        events = [_event("cancelled", order)]
        for child in self.working():
            if child.client_id == order.client_id and child.parent_id == order.order_id:
                events += self.cancel(child, now)
        return events

    def expire(self, now: datetime) -> list[OrderEvent]:
        """Cancel the DAY orders whose session has closed."""
        events: list[OrderEvent] = []
        for order in self.working():
            if order.expires_at is not None and now >= order.expires_at and order.status in ACTIVE:
                events += self.cancel(order, now)
        return events

    def cancel_all(self, now: datetime) -> list[OrderEvent]:
        """reqGlobalCancel: cancel every working order of every client."""
        events: list[OrderEvent] = []
        for order in self.working():
            if order.status in ACTIVE:
                events += self.cancel(order, now)
        return events

    # ------------------------------------------------------------------ matching
    def on_quote(self, con_id: int, q: Quote, now: datetime) -> list[OrderEvent]:
        """Match the working orders of ``con_id`` against a new quote."""
        events: list[OrderEvent] = []
        for order in self.working():
            if order.contract.con_id == con_id and order.status == OrderStatus.SUBMITTED:
                events += self._match(order, q, now, arrival=False)
        return events

    def _held(self, order: SimOrder) -> bool:
        if not order.parent_id:
            return False
        parent = self.orders.get((order.client_id, order.parent_id))
        return parent is not None and parent.status != OrderStatus.FILLED

    def _in_hours(self, order: SimOrder, q: Quote) -> bool:
        return not self.config.enforce_regular_hours or q.regular or order.outside_rth

    def _match(self, order: SimOrder, q: Quote, now: datetime, arrival: bool) -> list[OrderEvent]:
        decision = decide(order.terms(), order.contract, q, arrival)
        order.triggered = decision.triggered
        if order.order_type == "TRAIL":
            order.trail_stop = decision.stop
        if decision.price is None or not self._in_hours(order, q):
            if order.tif in ("IOC", "FOK") and arrival:
                return self.cancel(order, now)
            return []
        return self._fill(order, order.quantity - order.filled, decision.price, now)

    def _fill(self, order: SimOrder, shares: Decimal, price: Decimal, now: datetime) -> list[OrderEvent]:
        c = order.contract
        fee = commission(
            c, shares, price, self.config.stock_commission_per_share, self.config.option_commission_per_contract
        )
        buy = order.action == "BUY"
        realized = self.account.apply_fill(c, shares if buy else -shares, price, fee)
        total = order.filled + shares
        order.avg_fill_price = (order.avg_fill_price * order.filled + price * shares) / total
        order.filled, order.last_fill_price = total, price
        self._exec_seq += 1
        execution = Execution(
            f"{order.perm_id:08x}.{self._exec_seq:08x}.01.01",
            now,
            order.client_id,
            order.order_id,
            order.perm_id,
            c,
            "BOT" if buy else "SLD",
            shares,
            price,
            total,
            order.avg_fill_price,
            order.order_ref,
            order.account,
            self._exchange_of(c),
            fee,
            realized,
        )
        self.executions.append(execution)
        order.log.append((now, order.status, f"Fill {shares}@{price}"))
        events = [_event("fill", order, execution)]
        if total >= order.quantity:
            order.set_status(OrderStatus.FILLED, now)
        events += [_event("status", order), _event("commission", order, execution)]
        if order.status == OrderStatus.FILLED:
            events += self._after_fill(order, now)
        return events

    def _after_fill(self, order: SimOrder, now: datetime) -> list[OrderEvent]:
        events: list[OrderEvent] = []
        for other in self.working():
            if other.client_id != order.client_id:
                continue
            if order.oca_group and other.oca_group == order.oca_group:
                events += self.cancel(other, now)
            elif other.parent_id == order.order_id and other.status == OrderStatus.PRE_SUBMITTED:
                other.set_status(OrderStatus.SUBMITTED, now, "parent filled")
                events.append(_event("status", other))
        return events
