"""Handlers of the trading and account requests: orders, executions, positions, account, P&L.

Error codes: 201 order rejected (invalid order or unknown contract), 110 price off the
contract's tick grid (the order is then Cancelled), 103 a reused order id, 10147/10148
cancel of an unknown / finished order, 202 after every cancel.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from quanticity.simulation.calendar import to_et
from quanticity.simulation.tws import messages as m
from quanticity.simulation.tws import order_messages as om
from quanticity.simulation.tws.account import account_values, summary_values
from quanticity.simulation.tws.bars import BarRequestError, parse_end
from quanticity.simulation.tws.contracts import SimContract
from quanticity.simulation.tws.fill_model import commission, off_tick, rejection
from quanticity.simulation.tws.handlers_data import resolve_one
from quanticity.simulation.tws.orders import DONE, OrderStatus, OrderTicket, SimOrder
from quanticity.simulation.tws.protocol import FieldReader
from quanticity.simulation.tws.session import Handler, Session
from quanticity.simulation.tws.state import account_messages

__all__ = ["TRADING_HANDLERS", "pnl_values"]


# ------------------------------------------------------------------ orders
async def place_order(session: Session, r: FieldReader) -> None:
    """3: a new order, or a modification of a working one."""
    ticket = om.parse_place_order(r)
    state = session.state
    assert session.client_id is not None
    client_id, order_id = session.client_id, ticket.order_id
    existing = state.orders.get(client_id, order_id)
    if existing is not None and existing.status in DONE:
        if existing.status == OrderStatus.FILLED:
            session.error(order_id, 104, "Can't modify a filled order.")
        else:
            session.error(order_id, 103, "Duplicate order id")
        return
    contract = existing.contract if existing is not None else None
    if contract is None:
        contract = await resolve_one(session, ticket.contract, order_id, report=False)
    reason = rejection(
        ticket.action,
        ticket.quantity,
        ticket.order_type,
        ticket.tif,
        ticket.limit,
        ticket.aux,
        ticket.trail_percent,
        contract,
    )
    if reason is not None or contract is None:
        session.error(order_id, 201, f"Order rejected - reason:{reason}")
        return
    quote = await state.quote(contract)
    now = state.now()
    order = _order(session, ticket, contract)
    if ticket.what_if:
        session.send(om.open_order(order, _what_if(session, order, quote.mark)))
        return
    stop = None if ticket.order_type == "TRAIL" else ticket.aux
    if off_tick(contract, ticket.limit) or off_tick(contract, stop):
        session.error(order_id, 110, "The price does not conform to the minimum price variation for this contract.")
        state.route(state.orders.reject(order, now, "price off the tick grid"))
        return
    if existing is not None:
        state.route(state.orders.modify(existing, ticket, quote, now))
        return
    if order.tif == "DAY":
        order.expires_at = state.session_close(now, order.outside_rth)
    state.route(state.orders.place(order, quote, now))


def _order(session: Session, ticket: OrderTicket, contract: SimContract) -> SimOrder:
    """The order a ticket describes (not yet in the book; no permId)."""
    assert ticket.quantity is not None and session.client_id is not None
    return SimOrder(
        session.client_id,
        ticket.order_id,
        0,
        contract,
        ticket.action,
        ticket.quantity,
        ticket.order_type,
        ticket.limit,
        ticket.aux,
        ticket.tif or "DAY",
        ticket.oca_group,
        ticket.account or session.state.config.account,
        ticket.order_ref,
        ticket.parent_id,
        ticket.outside_rth,
        ticket.trail_stop,
        ticket.trail_percent,
    )


def _what_if(session: Session, order: SimOrder, mark: float | None) -> tuple[str, ...]:
    """whatIf strings: init, maint, equity-with-loan before / change / after; commission, min, max.

    The margin change uses the account's Reg T rates: 50% initial, 25% maintenance of the notional.
    """
    config = session.state.config
    v = session.state.valuation()
    price = order.limit if order.limit is not None else Decimal(repr(mark or 0.0))
    notional = float(order.quantity * price) * order.contract.multiplier_value
    init, maint = 0.5 * notional, 0.25 * notional
    fee = commission(
        order.contract, order.quantity, price, config.stock_commission_per_share, config.option_commission_per_contract
    )
    return (
        f"{v.init_margin:.2f}",
        f"{v.maint_margin:.2f}",
        f"{v.equity_with_loan:.2f}",
        f"{init:.2f}",
        f"{maint:.2f}",
        f"{-float(fee):.2f}",
        f"{v.init_margin + init:.2f}",
        f"{v.maint_margin + maint:.2f}",
        f"{v.equity_with_loan - float(fee):.2f}",
        f"{fee}",
        f"{fee}",
        f"{fee}",
    )


async def cancel_order(session: Session, r: FieldReader) -> None:
    """4: cancel a working order (orderStatus Cancelled, then error 202)."""
    r.skip(1)
    order_id = r.req()
    state = session.state
    assert session.client_id is not None
    order = state.orders.get(session.client_id, order_id)
    if order is None:
        session.error(order_id, 10147, f"OrderId {order_id} that needs to be cancelled is not found.")
    elif order.status in DONE:
        session.error(
            order_id,
            10148,
            f"OrderId {order_id} that needs to be cancelled cannot be cancelled, state: {order.status}.",
        )
    else:
        state.route(state.orders.cancel(order, state.now()))


async def global_cancel(session: Session, r: FieldReader) -> None:
    """58: cancel every working order of every client."""
    state = session.state
    state.route(state.orders.cancel_all(state.now()))


async def open_orders(session: Session, r: FieldReader) -> None:
    """5 (this client's) and 16 (all clients'): openOrder + orderStatus each, then openOrderEnd."""
    orders = [o for o in session.state.orders.working() if r.msg_id == 16 or o.client_id == session.client_id]
    msgs = [msg for o in orders for msg in (om.open_order(o), om.order_status(o))]
    session.send_many([*msgs, m.open_order_end()])


async def completed_orders(session: Session, r: FieldReader) -> None:
    """99: today's finished orders (completedOrder only ever answers this request)."""
    done = [o for o in session.state.orders if o.status in DONE]
    session.send_many([*(om.completed_order(o) for o in done), [102]])


async def executions(session: Session, r: FieldReader) -> None:
    """7: the executions matching the filter, each with its commission report, then execDetailsEnd."""
    r.skip(1)
    req_id = r.req()
    client_id, account, time_text = r.integer(0), r.text(), r.text()
    symbol, sec_type, exchange, side = r.text().upper(), r.text().upper(), r.text().upper(), r.text().upper()
    state = session.state
    since: datetime | None = None
    if time_text.strip():
        try:
            since = parse_end(time_text, state.now())
        except BarRequestError:
            since = None
    msgs = []
    today = to_et(state.now()).date()
    for e in state.orders.executions:
        if to_et(e.time).date() != today:  # TWS replays the current day's executions
            continue
        if (client_id and e.client_id != client_id) or (account and e.account != account):
            continue
        if (symbol and e.contract.symbol != symbol) or (sec_type and e.contract.sec_type != sec_type):
            continue
        if (exchange and e.exchange != exchange) or (
            side and side not in (e.side, "BUY" if e.side == "BOT" else "SELL")
        ):
            continue
        if since is not None and e.time < since:
            continue
        msgs += [om.exec_details(req_id, e), om.commission_report(e)]
    session.send_many([*msgs, m.exec_details_end(req_id)])


# ------------------------------------------------------------------ account
async def account_updates(session: Session, r: FieldReader) -> None:
    """6: subscribe (values, portfolio, time, accountDownloadEnd) or unsubscribe."""
    r.skip(1)
    subscribe = r.flag()
    account = r.text() or session.state.config.account
    session.account_updates = subscribe
    if subscribe:
        state = session.state
        session.send_account(account_messages(state.valuation(), state.config.account, state.now()), force=True)
        session.send(m.account_download_end(account))


async def positions(session: Session, r: FieldReader) -> None:
    """61: every open position, then positionEnd; fills then stream position updates."""
    state = session.state
    session.positions_stream = True
    msgs = [
        m.position(state.config.account, p.contract.fields11(p.contract.exchange), float(p.quantity), float(p.avg_cost))
        for p in state.account.open_positions()
    ]
    session.send_many([*msgs, m.position_end()])


async def cancel_positions(session: Session, r: FieldReader) -> None:
    """64: stop streaming positions."""
    session.positions_stream = False


async def positions_multi(session: Session, r: FieldReader) -> None:
    """74: positionMulti rows for the account, then positionMultiEnd."""
    r.skip(1)
    req_id = r.req()
    account, model = r.text() or session.state.config.account, r.text()
    rows: list[m.Msg] = [
        [71, 1, req_id, account, *p.contract.fields11(p.contract.exchange), float(p.quantity), float(p.avg_cost), model]
        for p in session.state.account.open_positions()
    ]
    session.send_many([*rows, [72, 1, req_id]])


async def account_summary(session: Session, r: FieldReader) -> None:
    """62: the requested tags for the account, then accountSummaryEnd."""
    r.skip(1)
    req_id = r.req()
    r.skip(1)  # group: the simulator has one account
    tags = r.text().split(",")
    state = session.state
    account = state.config.account
    rows = summary_values(state.valuation(), account, tags)
    msgs = [m.account_summary(req_id, account, tag, value, currency) for tag, value, currency in rows]
    session.send_many([*msgs, m.account_summary_end(req_id)])


async def account_updates_multi(session: Session, r: FieldReader) -> None:
    """76: the account values for one account/model, then accountUpdateMultiEnd."""
    r.skip(1)
    req_id = r.req()
    account, model = r.text() or session.state.config.account, r.text()
    state = session.state
    msgs = [
        m.account_update_multi(req_id, account, model, k, v, c)
        for k, v, c in account_values(state.valuation(), state.config.account)
    ]
    session.account_multi.add(req_id)
    session.send_many([*msgs, m.account_update_multi_end(req_id)])


def pnl_values(session: Session, con_id: int | None) -> tuple[float, ...]:
    """(daily, unrealized, realized) for the account, or (pos, daily, unrealized, realized, value) for a conId."""
    v = session.state.valuation()
    if con_id is None:
        return v.daily, v.unrealized, v.realized
    h = v.holding(con_id)
    if h is None:
        return 0.0, 0.0, 0.0, 0.0, 0.0
    return h.quantity, h.daily, h.unrealized, h.realized, h.market_value


def pnl_message(req_id: int, con_id: int | None, values: tuple[float, ...]) -> m.Msg:
    """pnl (94) or pnlSingle (95) for ``values`` from ``pnl_values``."""
    if con_id is None:
        return m.pnl(req_id, *values)
    return m.pnl_single(req_id, *values)


async def req_pnl(session: Session, r: FieldReader) -> None:
    """92 (account) and 94 (one conId): the current P&L now, then on each change."""
    req_id = r.req()
    r.skip(2)  # account, modelCode
    con_id = r.integer(0) if r.msg_id == 94 else None
    session.pnl_subs[req_id] = con_id
    values = pnl_values(session, con_id)
    session.pnl_sent[req_id] = tuple(round(v, 2) for v in values)
    session.send(pnl_message(req_id, con_id, values))


async def cancel_pnl(session: Session, r: FieldReader) -> None:
    """93, 95: end a P&L stream."""
    req_id = r.req()
    session.pnl_subs.pop(req_id, None)
    session.pnl_sent.pop(req_id, None)


async def cancel_by_req(session: Session, r: FieldReader) -> None:
    """63, 75, 77: end a one-shot stream (account summary, positions / account updates multi)."""
    r.skip(1)
    session.account_multi.discard(r.req())


TRADING_HANDLERS: dict[int, Handler] = {
    3: place_order,
    4: cancel_order,
    5: open_orders,
    6: account_updates,
    7: executions,
    16: open_orders,
    58: global_cancel,
    61: positions,
    62: account_summary,
    63: cancel_by_req,
    64: cancel_positions,
    74: positions_multi,
    75: cancel_by_req,
    76: account_updates_multi,
    77: cancel_by_req,
    92: req_pnl,
    93: cancel_pnl,
    94: req_pnl,
    95: cancel_pnl,
    99: completed_orders,
}
