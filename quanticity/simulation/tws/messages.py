"""Builders for every server-to-client message except the order family (see ``order_messages``).

Each builder returns the message's field list at server version 176, message id first,
with the version field where TWS sends one (tws.md §7.3). ``ARITY`` records the field
count of the fixed-size messages; the unit tests hold every builder to it because the
client drops a message whose count is off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from quanticity.simulation.tws.protocol import Field

__all__ = [
    "ARITY",
    "Bar",
    "Msg",
    "OptionGreeks",
    "account_download_end",
    "account_summary",
    "account_summary_end",
    "account_update_multi",
    "account_update_multi_end",
    "contract_data_end",
    "current_time",
    "error",
    "exec_details_end",
    "head_timestamp",
    "historical_data",
    "historical_data_update",
    "managed_accounts",
    "market_data_type",
    "market_rule",
    "mkt_depth_exchanges",
    "mkt_depth_l2",
    "next_valid_id",
    "open_order_end",
    "pnl",
    "pnl_single",
    "position",
    "position_end",
    "realtime_bar",
    "sec_def_opt_param",
    "sec_def_opt_param_end",
    "tick_by_tick_bid_ask",
    "tick_by_tick_last",
    "tick_by_tick_midpoint",
    "tick_generic",
    "tick_option_computation",
    "tick_price",
    "tick_req_params",
    "tick_size",
    "tick_snapshot_end",
    "tick_string",
    "update_account_time",
    "update_account_value",
    "update_portfolio",
]

Msg = list[Field]

# Field counts (message id included) of the fixed-size messages at server version 176.
ARITY: dict[int, int] = {
    1: 7,  # tickPrice
    2: 5,  # tickSize
    3: 12,  # orderStatus
    4: 6,  # error (advancedOrderRejectJson required from 166)
    5: 128,  # openOrder (no variable parts in the simulator's orders)
    6: 6,  # updateAccountValue
    7: 20,  # updatePortfolio
    8: 3,  # updateAccountTime
    9: 3,  # nextValidId
    10: 40,  # contractData (numSecIds 0)
    11: 31,  # execDetails
    13: 10,  # updateMktDepthL2
    15: 3,  # managedAccounts
    21: 12,  # tickOptionComputation
    45: 5,  # tickGeneric
    46: 5,  # tickString
    49: 3,  # currentTime
    50: 11,  # realtimeBar
    52: 3,  # contractDataEnd
    53: 2,  # openOrderEnd
    54: 3,  # accountDownloadEnd
    55: 3,  # execDetailsEnd
    57: 3,  # tickSnapshotEnd
    58: 4,  # marketDataType
    59: 8,  # commissionReport
    61: 16,  # position
    62: 2,  # positionEnd
    63: 7,  # accountSummary
    64: 3,  # accountSummaryEnd
    73: 8,  # accountUpdateMulti
    74: 3,  # accountUpdateMultiEnd
    76: 2,  # securityDefinitionOptionParameterEnd
    81: 5,  # tickReqParams
    88: 3,  # headTimestamp
    90: 10,  # historicalDataUpdate
    94: 5,  # pnl
    95: 7,  # pnlSingle
    101: 97,  # completedOrder
    102: 1,  # completedOrdersEnd
}


@dataclass(frozen=True, slots=True)
class Bar:
    """One historical or real-time bar as sent on the wire.

    Attributes:
        date: the bar's label (``YYYYMMDD``, ``YYYYMMDD HH:MM:SS Zone`` or epoch text).
        epoch: bar start in epoch seconds (real-time bars, update ordering).
        volume, wap, count: ``-1`` where TWS has none (MIDPOINT, BID, ASK).
    """

    date: str
    epoch: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    wap: float
    count: int


@dataclass(frozen=True, slots=True)
class OptionGreeks:
    """The payload of tickOptionComputation in TWS units.

    ``-1`` (implied vol, price, pvDividend, underlying) and ``-2`` (Greeks) mean "not computed".
    Vega is per volatility point, theta per calendar day.
    """

    implied_vol: float
    delta: float
    price: float
    pv_dividend: float
    gamma: float
    vega: float
    theta: float
    und_price: float


def _px(value: float | None) -> float | None:
    return None if value is None else round(value, 8)


# ------------------------------------------------------------------ connection and errors
def error(req_id: int, code: int, text: str, advanced_json: str = "") -> Msg:
    """error (4): routed by the client to a request, an order, or the log."""
    return [4, 2, req_id, code, text, advanced_json]


def managed_accounts(accounts: Sequence[str]) -> Msg:
    """managedAccounts (15); exactly 3 fields while the client connects."""
    return [15, 1, ",".join(accounts)]


def next_valid_id(order_id: int) -> Msg:
    """nextValidId (9); exactly 3 fields while the client connects."""
    return [9, 1, order_id]


def current_time(epoch: int) -> Msg:
    """currentTime (49): integer epoch seconds (a float is dropped by the client)."""
    return [49, 1, epoch]


# ------------------------------------------------------------------ market data
def tick_price(req_id: int, tick_type: int, price: float, size: float = 0, attrib: int = 0) -> Msg:
    """tickPrice (1): exactly 7 fields; the client takes the size from here."""
    return [1, 6, req_id, tick_type, _px(price), size, attrib]


def tick_size(req_id: int, tick_type: int, size: float) -> Msg:
    """tickSize (2)."""
    return [2, 6, req_id, tick_type, size]


def tick_generic(req_id: int, tick_type: int, value: float) -> Msg:
    """tickGeneric (45): implied/historical volatility, halted..."""
    return [45, 6, req_id, tick_type, round(value, 10)]


def tick_string(req_id: int, tick_type: int, value: str) -> Msg:
    """tickString (46): RT volume, exchanges, timestamps."""
    return [46, 6, req_id, tick_type, value]


def tick_option_computation(req_id: int, tick_type: int, greeks: OptionGreeks, price_based: bool = False) -> Msg:
    """tickOptionComputation (21): exactly 12 numeric fields."""
    g = greeks
    values = (g.implied_vol, g.delta, g.price, g.pv_dividend, g.gamma, g.vega, g.theta, g.und_price)
    return [21, req_id, tick_type, 1 if price_based else 0, *(round(v, 10) for v in values)]


def tick_req_params(req_id: int, min_tick: float, bbo_exchange: str, snapshot_permissions: int) -> Msg:
    """tickReqParams (81), sent first on every market-data subscription."""
    return [81, req_id, min_tick, bbo_exchange, snapshot_permissions]


def market_data_type(req_id: int, data_type: int) -> Msg:
    """marketDataType (58): 1 live, 2 frozen, 3 delayed, 4 delayed-frozen."""
    return [58, 1, req_id, data_type]


def tick_snapshot_end(req_id: int) -> Msg:
    """tickSnapshotEnd (57): ends a snapshot request."""
    return [57, 1, req_id]


def mkt_depth_l2(
    req_id: int, position: int, market_maker: str, operation: int, side: int, price: float, size: float
) -> Msg:
    """updateMktDepthL2 (13): operation 0 insert / 1 update / 2 delete; side 0 ask / 1 bid."""
    return [13, 1, req_id, position, market_maker, operation, side, _px(price), size, False]


def mkt_depth_exchanges(rows: Sequence[tuple[str, str, str, str, int]]) -> Msg:
    """mktDepthExchanges (80): (exchange, secType, listingExch, serviceDataType, aggGroup) rows."""
    out: Msg = [80, len(rows)]
    for row in rows:
        out.extend(row)
    return out


def tick_by_tick_last(
    req_id: int, all_last: bool, epoch: int, price: float, size: float, exchange: str, conditions: str = ""
) -> Msg:
    """tickByTick (99) type 1 (Last) or 2 (AllLast)."""
    return [99, req_id, 2 if all_last else 1, epoch, _px(price), size, 0, exchange, conditions]


def tick_by_tick_bid_ask(req_id: int, epoch: int, bid: float, ask: float, bid_size: float, ask_size: float) -> Msg:
    """tickByTick (99) type 3 (BidAsk)."""
    return [99, req_id, 3, epoch, _px(bid), _px(ask), bid_size, ask_size, 0]


def tick_by_tick_midpoint(req_id: int, epoch: int, midpoint: float) -> Msg:
    """tickByTick (99) type 4 (MidPoint)."""
    return [99, req_id, 4, epoch, _px(midpoint)]


# ------------------------------------------------------------------ bars
def historical_data(req_id: int, start: str, end: str, bars: Sequence[Bar]) -> Msg:
    """historicalData (17): all bars in one message, which also ends the request."""
    out: Msg = [17, req_id, start, end, len(bars)]
    for b in bars:
        out += [b.date, _px(b.open), _px(b.high), _px(b.low), _px(b.close), b.volume, _px(b.wap), b.count]
    return out


def historical_data_update(req_id: int, bar: Bar) -> Msg:
    """historicalDataUpdate (90): note the open, close, high, low order."""
    ochl = (bar.open, bar.close, bar.high, bar.low)
    return [90, req_id, bar.count, bar.date, *(_px(v) for v in ochl), _px(bar.wap), bar.volume]


def realtime_bar(req_id: int, bar: Bar) -> Msg:
    """realtimeBar (50): one 5-second bar."""
    ohlc = (bar.open, bar.high, bar.low, bar.close)
    return [50, 3, req_id, bar.epoch, *(_px(v) for v in ohlc), bar.volume, _px(bar.wap), bar.count]


def head_timestamp(req_id: int, stamp: str) -> Msg:
    """headTimestamp (88): the earliest data point available."""
    return [88, req_id, stamp]


# ------------------------------------------------------------------ contracts
def contract_data_end(req_id: int) -> Msg:
    """contractDataEnd (52)."""
    return [52, 1, req_id]


def sec_def_opt_param(
    req_id: int,
    exchange: str,
    under_con_id: int,
    trading_class: str,
    multiplier: str,
    expirations: Sequence[str],
    strikes: Sequence[float],
) -> Msg:
    """securityDefinitionOptionParameter (75): the strikes run to the end of the message."""
    head: Msg = [75, req_id, exchange, under_con_id, trading_class, multiplier]
    return [*head, len(expirations), *expirations, len(strikes), *(float(s) for s in strikes)]


def sec_def_opt_param_end(req_id: int) -> Msg:
    """securityDefinitionOptionParameterEnd (76)."""
    return [76, req_id]


def market_rule(rule_id: int, increments: Sequence[tuple[float, float]]) -> Msg:
    """marketRule (93): (low edge, increment) pairs."""
    out: Msg = [93, rule_id, len(increments)]
    for low, inc in increments:
        out += [low, inc]
    return out


# ------------------------------------------------------------------ account
def update_account_value(key: str, value: str, currency: str, account: str) -> Msg:
    """updateAccountValue (6)."""
    return [6, 2, key, value, currency, account]


def update_portfolio(
    contract_fields: Sequence[Field],
    position: float,
    market_price: float,
    market_value: float,
    average_cost: float,
    unrealized: float,
    realized: float,
    account: str,
) -> Msg:
    """updatePortfolio (7): exactly 20 fields; ``contract_fields`` are the 11 contract slots."""
    numbers = (round(market_price, 8), round(market_value, 4), round(average_cost, 8), round(unrealized, 4))
    return [7, 8, *contract_fields, position, *numbers, round(realized, 4), account]


def update_account_time(hhmm: str) -> Msg:
    """updateAccountTime (8)."""
    return [8, 1, hhmm]


def account_download_end(account: str) -> Msg:
    """accountDownloadEnd (54)."""
    return [54, 1, account]


def position(account: str, contract_fields: Sequence[Field], quantity: float, avg_cost: float) -> Msg:
    """position (61): exactly 16 fields; ``contract_fields`` are the 11 contract slots (with exchange)."""
    return [61, 3, account, *contract_fields, quantity, round(avg_cost, 8)]


def position_end() -> Msg:
    """positionEnd (62)."""
    return [62, 1]


def account_summary(req_id: int, account: str, tag: str, value: str, currency: str) -> Msg:
    """accountSummary (63)."""
    return [63, 1, req_id, account, tag, value, currency]


def account_summary_end(req_id: int) -> Msg:
    """accountSummaryEnd (64)."""
    return [64, 1, req_id]


def account_update_multi(req_id: int, account: str, model: str, key: str, value: str, currency: str) -> Msg:
    """accountUpdateMulti (73)."""
    return [73, 1, req_id, account, model, key, value, currency]


def account_update_multi_end(req_id: int) -> Msg:
    """accountUpdateMultiEnd (74)."""
    return [74, 1, req_id]


def pnl(req_id: int, daily: float, unrealized: float, realized: float) -> Msg:
    """pnl (94)."""
    return [94, req_id, round(daily, 4), round(unrealized, 4), round(realized, 4)]


def pnl_single(req_id: int, quantity: float, daily: float, unrealized: float, realized: float, value: float) -> Msg:
    """pnlSingle (95)."""
    return [95, req_id, quantity, round(daily, 4), round(unrealized, 4), round(realized, 4), round(value, 4)]


def open_order_end() -> Msg:
    """openOrderEnd (53)."""
    return [53, 1]


def exec_details_end(req_id: int) -> Msg:
    """execDetailsEnd (55)."""
    return [55, 1, req_id]
