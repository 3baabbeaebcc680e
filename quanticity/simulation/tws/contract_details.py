"""contractData (10) replies, trading-hour strings and market rules of the simulator's contracts."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from quanticity.simulation.calendar import is_trading_day, to_et
from quanticity.simulation.tws.contracts import (
    OPTION_EXCHANGES,
    STOCK_EXCHANGES,
    SimContract,
)
from quanticity.simulation.tws.messages import Msg

__all__ = ["MARKET_RULES", "contract_data", "market_rule_id", "trading_hours"]

# Market rule id -> (low edge, increment) pairs; the ids are the simulator's own.
MARKET_RULES: dict[int, tuple[tuple[float, float], ...]] = {
    26: ((0.0, 0.0001), (1.0, 0.01)),  # US stocks
    32: ((0.0, 0.01),),  # penny-pilot index-ETF options, cash indices
    33: ((0.0, 0.01), (3.0, 0.05)),  # single-name options
    110: ((0.0, 0.05), (3.0, 0.10)),  # SPX/SPXW options
    239: ((0.0, 0.00005),),  # FX majors
    240: ((0.0, 0.005),),  # FX yen crosses
}

_STOCK_ORDER_TYPES = (
    "ACTIVETIM,AD,ADJUST,ALERT,ALGO,ALLOC,AVGCOST,BASKET,BENCHPX,COND,CONDORDER,DARKONLY,DARKPOLL,DAY,DEACT,"
    "DEACTDIS,DEACTEOD,DIS,GAT,GTC,GTD,GTT,HID,IBKRATS,ICE,IMB,IOC,LIT,LMT,LOC,MIDPX,MIT,MKT,MOC,MTL,NGCOMB,"
    "NODARK,NONALGO,OCA,OPG,OPGREROUT,PEGBENCH,PEGMID,POSTATS,POSTONLY,PREOPGRTH,PRICECHK,REL,REL2MID,RELPCTOFS,"
    "RPI,RTH,SCALE,SCALEODD,SCALERST,SIZECHK,SNAPMID,SNAPMKT,SNAPREL,STP,STPLMT,SWEEP,TRAIL,TRAILLIT,TRAILLMT,"
    "TRAILMIT,WHATIF"
)
_OPTION_ORDER_TYPES = (
    "ACTIVETIM,AD,ADJUST,ALERT,ALLOC,AVGCOST,BASKET,COND,CONDORDER,DAY,DEACT,DEACTDIS,DEACTEOD,DIS,FOK,GAT,GTC,"
    "GTD,GTT,HID,ICE,IOC,LIT,LMT,MIT,MKT,MTL,NGCOMB,NONALGO,OCA,OPENCLOSE,PEGMIDVOL,PEGMKTVOL,PEGPRMVOL,"
    "PEGSRFVOL,POSTONLY,PRICECHK,REL,REL2MID,RELPCTOFS,SCALE,SCALERST,SIZECHK,SNAPMID,SNAPMKT,SNAPREL,STP,"
    "STPLMT,TRAIL,TRAILLIT,TRAILLMT,TRAILMIT,VOLAT,WHATIF"
)
_FX_ORDER_TYPES = (
    "ACTIVETIM,AD,ADJUST,ALERT,ALGO,ALLOC,AVGCOST,BASKET,CASH,COND,DAY,GTC,GTD,IOC,LMT,MKT,STP,STPLMT,TRAIL"
)


def market_rule_id(contract: SimContract) -> int:
    """The market rule of ``contract`` (see ``MARKET_RULES``)."""
    return {
        "stock": 26,
        "index": 32,
        "etf": 32,
        "single": 33,
        "spx": 110,
        "fx": 240 if contract.symbol == "USD" else 239,
    }[contract.tick_style]


def trading_hours(contract: SimContract, now: datetime, days: int = 7) -> tuple[str, str]:
    """TWS ``tradingHours`` and ``liquidHours`` strings for the week starting at ``now``'s ET date."""
    first = to_et(now).date()
    trading: list[str] = []
    liquid: list[str] = []
    for offset in range(days):
        d = first + timedelta(days=offset)
        stamp = d.strftime("%Y%m%d")
        if contract.sec_type == "CASH":
            if d.weekday() == 5:
                trading.append(f"{stamp}:CLOSED")
                liquid.append(f"{stamp}:CLOSED")
                continue
            prev = (d - timedelta(days=1)).strftime("%Y%m%d")
            span = f"{prev}:1715-{stamp}:1700"
            trading.append(span)
            liquid.append(span)
            continue
        if not is_trading_day(d):
            trading.append(f"{stamp}:CLOSED")
            liquid.append(f"{stamp}:CLOSED")
            continue
        regular = f"{stamp}:0930-{stamp}:1600"
        trading.append(regular if contract.sec_type in ("OPT", "IND") else f"{stamp}:0400-{stamp}:2000")
        liquid.append(regular)
    return ";".join(trading), ";".join(liquid)


def _valid_exchanges(contract: SimContract) -> tuple[str, ...]:
    if contract.sec_type == "STK":
        return STOCK_EXCHANGES
    if contract.sec_type == "OPT":
        return ("SMART", "CBOE") if contract.tick_style == "spx" else OPTION_EXCHANGES
    return (contract.exchange,)


def contract_data(req_id: int, contract: SimContract, now: datetime) -> Msg:
    """contractData (10): 40 fields at server version 176 (tws.md §4.3).

    Args:
        req_id: the request id echoed.
        contract: the resolved contract (its ``exchange`` is the one echoed back).
        now: the simulator's clock, for the trading-hour strings.
    """
    c = contract
    exchanges = _valid_exchanges(c)
    rule = market_rule_id(c)
    hours, liquid = trading_hours(c, now)
    if c.sec_type == "OPT" and c.expiry is not None:
        last_times = f"{c.expiry:%Y%m%d} {'09:30' if c.am_settled else '16:00'} US/Eastern"
        real_expiry = c.expiry.strftime("%Y%m%d")
        contract_month = c.expiry.strftime("%Y%m")
    else:
        last_times, real_expiry, contract_month = "", "", ""
    order_types = {"OPT": _OPTION_ORDER_TYPES, "CASH": _FX_ORDER_TYPES}.get(c.sec_type, _STOCK_ORDER_TYPES)
    min_tick = {"stock": 0.01, "fx": 0.00005 if c.symbol != "USD" else 0.005, "spx": 0.05}.get(c.tick_style, 0.01)
    market_name = c.trading_class if c.sec_type != "STK" else ("NMS" if c.trading_class == "NMS" else c.symbol)
    size_rules = ("1", "1", "100") if c.sec_type == "STK" else ("1", "1", "1")
    if c.sec_type == "CASH":
        size_rules = ("0.01", "0.01", "1000")
    under_symbol = c.symbol if c.sec_type == "OPT" else ""
    return [
        10,
        req_id,
        c.symbol,
        c.sec_type,
        last_times,
        c.strike,
        c.right,
        c.exchange,
        c.currency,
        c.local_symbol,
        market_name,
        c.trading_class,
        c.con_id,
        min_tick,
        c.multiplier,
        order_types if c.sec_type != "IND" else "",
        ",".join(exchanges),
        1,  # priceMagnifier
        c.under_con_id,
        c.long_name.encode("ascii", "replace").decode(),  # the client unicode-escape decodes it
        c.primary_exchange,
        contract_month,
        "",  # industry
        "",  # category
        "",  # subcategory
        "US/Eastern",
        hours,
        liquid,
        "",  # evRule
        "",  # evMultiplier
        0,  # numSecIds
        1 if c.sec_type in ("STK", "OPT") else 0,  # aggGroup
        under_symbol,
        c.under_sec_type,
        ",".join([str(rule)] * len(exchanges)),
        real_expiry,
        c.stock_type,
        *size_rules,
    ]


def expiry_date(text: str) -> date | None:
    """``YYYYMMDD`` as a date, or None."""
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return None
