"""The order book's state machine: events in TWS order, resting fills, OCA groups, brackets, cancels."""

from __future__ import annotations

from decimal import Decimal

from quanticity.simulation.tws.account import SimAccount
from quanticity.simulation.tws.config import TwsSimConfig
from quanticity.simulation.tws.orders import OrderBook, OrderEvent, SimOrder
from tests.unit.simulation.tws.samples import NOW, STOCK, quote

D = Decimal


def _book() -> OrderBook:
    config = TwsSimConfig()
    return OrderBook(config, SimAccount(config), lambda c: "ARCA")


def _order(
    order_id: int, action: str = "BUY", kind: str = "LMT", limit: str | None = "100.50", **kw: object
) -> SimOrder:
    order = SimOrder(7, order_id, 0, STOCK, action, D(10), kind, D(limit) if limit else None, None, "DAY", "", "DU1",
                     f"ref-{order_id}", 0, False, None, None)  # fmt: skip
    for key, value in kw.items():
        setattr(order, key, value)
    return order


def _trace(events: list[OrderEvent]) -> list[str]:
    return [f"{e.kind}:{e.order.status}" for e in events]


def test_a_marketable_order_reports_each_step_in_tws_order() -> None:
    book = _book()
    events = book.place(_order(1), quote(), NOW)
    assert _trace(events) == [
        "status:PreSubmitted", "status:Submitted", "fill:Submitted", "status:Filled", "commission:Filled",
    ]  # fmt: skip
    fill = events[2].execution
    assert fill is not None and fill.price == D("100.02") and fill.side == "BOT" and fill.cum_qty == D(10)
    assert fill.commission == D("1.00") and fill.realized_pnl is None
    assert events[0].order.perm_id == events[-1].order.perm_id > 0
    assert book.account.positions[STOCK.con_id].quantity == D(10)


def test_a_resting_order_fills_when_the_market_reaches_it() -> None:
    book = _book()
    order = _order(2, limit="99.90")
    assert _trace(book.place(order, quote(), NOW)) == ["status:PreSubmitted", "status:Submitted"]
    assert book.on_quote(STOCK.con_id, quote(bid=99.95, ask=99.97), NOW) == []
    events = book.on_quote(STOCK.con_id, quote(bid=99.88, ask=99.90), NOW)
    assert _trace(events) == ["fill:Submitted", "status:Filled", "commission:Filled"]
    assert events[0].execution is not None and events[0].execution.price == D("99.90")
    assert [o.status for o in book] == ["Filled"] and book.working() == []


def test_an_oca_fill_cancels_its_siblings_and_a_parent_fill_releases_children() -> None:
    book = _book()
    book.place(_order(3, limit="90", oca_group="g1"), quote(), NOW)
    book.place(_order(4, limit="91", oca_group="g1"), quote(), NOW)
    events = book.on_quote(STOCK.con_id, quote(bid=90.9, ask=90.95), NOW)
    assert _trace(events)[-1] == "cancelled:Cancelled" and book.get(7, 3) is not None
    assert [book.get(7, i).status for i in (3, 4)] == ["Cancelled", "Filled"]  # type: ignore[union-attr]
    parent = _order(5, limit="80")
    child = _order(6, action="SELL", limit="200", parent_id=5)
    book.place(parent, quote(), NOW)
    assert _trace(book.place(child, quote(), NOW)) == ["status:PreSubmitted"]
    released = book.on_quote(STOCK.con_id, quote(bid=79.9, ask=79.95), NOW)
    assert "status:Submitted" in _trace(released) and child.status == "Submitted"


def test_cancel_takes_the_children_and_ioc_cancels_what_it_cannot_fill() -> None:
    book = _book()
    parent = _order(7, limit="80")
    book.place(parent, quote(), NOW)
    book.place(_order(8, action="SELL", limit="120", parent_id=7), quote(), NOW)
    assert _trace(book.cancel(parent, NOW)) == ["cancelled:Cancelled", "cancelled:Cancelled"]
    ioc = _order(9, limit="90", tif="IOC")
    assert _trace(book.place(ioc, quote(), NOW))[-1] == "cancelled:Cancelled"


def test_modify_and_next_order_id() -> None:
    book = _book()
    order = _order(40, limit="90")
    book.place(order, quote(), NOW)
    assert book.next_order_id(7) == 41 and book.next_order_id(8) == 1
    from quanticity.simulation.tws.orders import OrderTicket
    from quanticity.simulation.tws.protocol import ContractQuery

    ticket = OrderTicket(40, ContractQuery(), "BUY", D(10), "LMT", D("100.10"), None, "DAY", "", "", "ref-40", True, 0,
                         False, "", None, None, False)  # fmt: skip
    events = book.modify(order, ticket, quote(), NOW)
    assert _trace(events)[-2:] == ["status:Filled", "commission:Filled"]
    assert order.log[2][2] == "Modify"


def test_day_orders_expire_at_the_close() -> None:
    from datetime import timedelta

    book = _book()
    order = _order(50, limit="90")
    order.expires_at = NOW + timedelta(hours=1)
    book.place(order, quote(), NOW)
    assert book.expire(NOW + timedelta(minutes=59)) == []
    assert _trace(book.expire(NOW + timedelta(hours=1))) == ["cancelled:Cancelled"]
    assert book.working() == []
