"""The order family on the wire: placeOrder parsing, openOrder (128), orderStatus, execDetails (31),
commissionReport (8) and completedOrder (97) at server version 176 (tws.md §4.8).

``parse_place_order`` walks the placeOrder fields in the client's own order, including its
conditional inserts (BAG legs, delta-neutral, scale, hedge, algo), up to ``whatIf``;
the fields after it do not change what the simulator does.
"""

from __future__ import annotations

from decimal import Decimal

from quanticity.simulation.calendar import to_et
from quanticity.simulation.tws.messages import Msg
from quanticity.simulation.tws.orders import Execution, OrderTicket, SimOrder
from quanticity.simulation.tws.protocol import UNSET_DOUBLE, FieldReader, MalformedMessage

__all__ = [
    "commission_report",
    "completed_order",
    "exec_details",
    "open_order",
    "order_status",
    "parse_place_order",
]


def parse_place_order(r: FieldReader) -> OrderTicket:
    """Read a placeOrder (3) message (its id already consumed by the reader).

    Raises:
        MalformedMessage: a field does not parse, or the message ends early.
    """
    order_id = r.req()
    contract = r.contract()
    r.skip(2)  # secIdType, secId
    action, quantity, order_type = r.text().upper(), r.decimal(), r.text().upper()
    limit, aux = r.decimal(), r.decimal()
    tif, oca_group, account = r.text().upper(), r.text(), r.text()
    r.skip(2)  # openClose, origin
    order_ref = r.text()
    transmit = r.integer(1) != 0
    parent_id = r.integer(0)
    r.skip(4)  # blockOrder, sweepToFill, displaySize, triggerMethod
    outside_rth = r.flag()
    r.skip(1)  # hidden
    if contract.sec_type == "BAG":
        legs = r.integer(0)
        r.skip(8 * legs)
        r.skip(r.integer(0))
        r.skip(2 * r.integer(0))
    r.skip(3)  # deprecated sharesAllocation, discretionaryAmt, goodAfterTime
    good_till_date = r.text()
    r.skip(26)  # faGroup .. volatilityType: the fixed block up to deltaNeutralOrderType
    if r.text():  # deltaNeutralOrderType
        r.skip(1 + 8)
    else:
        r.skip(1)
    r.skip(2)  # continuousUpdate, referencePriceType
    trail_stop, trail_percent = r.decimal(), r.decimal()
    r.skip(2)  # scaleInitLevelSize, scaleSubsLevelSize
    increment = r.number(None)
    if increment is not None and 0 < increment < UNSET_DOUBLE:
        r.skip(7)
    r.skip(3)  # scaleTable, activeStartTime, activeStopTime
    if r.text():  # hedgeType
        r.skip(1)
    r.skip(4)  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld
    if r.flag():  # delta-neutral contract
        r.skip(3)
    if r.text():  # algoStrategy
        r.skip(2 * r.integer(0))
    r.skip(1)  # algoId
    what_if = r.flag()
    if not action:
        raise MalformedMessage(r.msg_id, r.fields, "empty action", order_id)
    return OrderTicket(
        order_id,
        contract,
        action,
        quantity,
        order_type,
        limit,
        aux,
        tif,
        oca_group,
        account,
        order_ref,
        transmit,
        parent_id,
        outside_rth,
        good_till_date,
        trail_stop,
        trail_percent,
        what_if,
    )


def order_status(o: SimOrder) -> Msg:
    """orderStatus (3): 12 fields, echoing the submitting clientId."""
    return [
        3, o.order_id, o.status, o.filled, o.remaining, o.avg_fill_price, o.perm_id, o.parent_id, o.last_fill_price,
        o.client_id, "", 0,
    ]  # fmt: skip


def open_order(o: SimOrder, what_if: tuple[str, ...] | None = None) -> Msg:
    """openOrder (5): 128 fields, in blocks named by their first and last slot (tws.md §4.8).

    Args:
        o: the order.
        what_if: for a whatIf reply, the 9 margin strings then commission, min, max.
    """
    c = o.contract
    margins: list[str] = list(what_if[:9]) if what_if else [""] * 9
    fees: list[str] = list(what_if[9:12]) if what_if else ["", "", ""]
    trail = o.trail_stop if o.order_type == "TRAIL" else None
    status = "PreSubmitted" if what_if else o.status
    msg: Msg = [5, o.order_id, *c.fields11(c.exchange)]
    msg += [o.action, o.quantity, o.order_type, o.limit, o.aux]  # 13-17 action .. auxPrice
    msg += [o.tif, o.oca_group, o.account, "O", 0, o.order_ref, o.client_id, o.perm_id]  # 18-25 tif .. permId
    msg += [o.outside_rth, False, 0.0, "", ""]  # 26-30 outsideRth .. deprecated
    msg += ["", "", "", "", "", "", "0", "", ""]  # 31-39 faGroup .. settlingFirm
    msg += [0, "", -1, 0, "", "", "", "", ""]  # 40-48 shortSaleSlot .. stockRangeUpper
    msg += [0, False, False, False, "", 0, False, False, "", o.parent_id, 0]  # 49-59 displaySize .. triggerMethod
    msg += ["", 0, "", ""]  # 60-63 volatility, volatilityType, deltaNeutralOrderType (empty: no insert), dnAux
    msg += [False, 0, trail, o.trail_percent, "", "", ""]  # 64-70 continuousUpdate .. comboLegsDescrip
    msg += [0, 0, 0, "", "", "", ""]  # 71-77 three counts, scale fields, hedgeType
    msg += [False, "", "", False, 0, ""]  # 78-83 optOutSmartRouting .. dncPresent, algoStrategy
    msg += [False, bool(what_if), status, *margins, *fees, "USD" if what_if else "", ""]  # 84-100
    msg += [False, False, 0]  # 101-103 randomizeSize, randomizePrice, numConditions
    msg += ["", "", trail, "", "", "", "", 0]  # 104-111 adjustedOrderType .. adjustableTrailingUnit
    msg += ["", "", "", "", False, False, False, ""]  # 112-119 softDollarTier .. usePriceMgmtAlgo
    msg += ["", "", False, "", "", "", "", ""]  # 120-127 duration .. midOffsetAtHalf
    return msg


def completed_order(o: SimOrder) -> Msg:
    """completedOrder (101): 97 fields (sent only in reply to reqCompletedOrders)."""
    c = o.contract
    stamp = to_et(o.completed_at).strftime("%Y%m%d %H:%M:%S US/Eastern") if o.completed_at else ""
    completed = "Filled" if o.status == "Filled" else "Cancelled by Trader"
    msg: Msg = [101, *c.fields11(c.exchange)]
    msg += [o.action, o.quantity, o.order_type, o.limit, o.aux, o.tif, o.oca_group, o.account, "O", 0]  # 12-21
    msg += [o.order_ref, o.perm_id, o.outside_rth, False, 0.0, ""]  # 22-27 orderRef .. goodAfterTime
    msg += ["", "", "", "", "", "", "0", "", ""]  # 28-36 faGroup .. settlingFirm
    msg += [0, "", -1, "", "", "", "", ""]  # 37-44 shortSaleSlot .. stockRangeUpper
    msg += [0, False, False, "", 0, 0]  # 45-50 displaySize .. triggerMethod
    msg += ["", 0, "", ""]  # 51-54 volatility .. deltaNeutralAuxPrice
    msg += [False, 0, "", "", ""]  # 55-59 continuousUpdate .. comboLegsDescrip
    msg += [0, 0, 0, "", "", "", ""]  # 60-66 three counts, scale fields, hedgeType
    msg += ["", "", False, 0, ""]  # 67-71 clearingAccount .. dncPresent, algoStrategy
    msg += [False, o.status, False, False, 0]  # 72-76 solicited, status, randomize x2, numConditions
    msg += ["", "", "", False, False, "", o.filled, 0, False, "", False, False, 0]  # 77-89 .. parentPermId
    msg += [stamp, completed, "", "", "", "", ""]  # 90-96 completedTime, completedStatus, 5 PEG fields
    return msg


def exec_details(req_id: int, e: Execution) -> Msg:
    """execDetails (11): exactly 31 fields; the time is aware (``YYYYMMDD HH:MM:SS UTC``)."""
    c = e.contract
    msg: Msg = [11, req_id, e.order_id, *c.fields11(c.exchange), e.exec_id, e.time.strftime("%Y%m%d %H:%M:%S UTC")]
    msg += [e.account, e.exchange, e.side, e.shares, e.price, e.perm_id, e.client_id, 0, e.cum_qty, e.avg_price]
    msg += [e.order_ref, "", "", "", 2]  # orderRef, evRule, evMultiplier, modelCode, lastLiquidity (2: removed)
    return msg


def commission_report(e: Execution) -> Msg:
    """commissionReport (59): exactly 8 fields; realized P&L is unset on opening fills."""
    realized: Decimal | float = e.realized_pnl if e.realized_pnl is not None else UNSET_DOUBLE
    return [59, 1, e.exec_id, e.commission, "USD", realized, UNSET_DOUBLE, ""]
