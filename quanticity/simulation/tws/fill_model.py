"""The fill model: order validation, when an order fills and at what price, commissions.

Pure functions on plain values, tested on their own. Prices on order paths are
``Decimal``; quotes arrive as floats and are converted at the boundary.

* ``MKT`` fills at once at the ask (buy) or bid (sell).
* ``LMT`` fills on arrival at the ask/bid when that is at or inside the limit (price
  improvement); a resting limit fills at its limit once the market touches it.
* ``STP`` triggers when the trigger price reaches the stop (buy: at or above; sell: at
  or below), then fills like ``MKT``; ``STP LMT`` then works like ``LMT``.
* ``TRAIL`` keeps its stop ``auxPrice`` (or ``trailingPercent``) away from the best
  trigger price seen and fills like ``MKT`` when triggered.

Trigger price: the last trade for stocks (the midpoint when there is none), the
ask (buys) or bid (sells) for options and FX, as TWS's default trigger method does.
Commissions are IBKR Fixed: stocks $0.005/share, min $1, max 1% of value; options
$0.65/contract, min $1; FX 0.2 bp of value, min $2.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from quanticity.simulation.tws.contracts import SimContract, price_increment
from quanticity.simulation.tws.quotes import Quote

__all__ = [
    "ORDER_TYPES",
    "TIFS",
    "Fill",
    "OrderTerms",
    "commission",
    "decide",
    "off_tick",
    "rejection",
    "to_decimal",
]

ORDER_TYPES = frozenset({"MKT", "LMT", "STP", "STP LMT", "TRAIL"})
TIFS = frozenset({"", "DAY", "GTC", "IOC", "FOK"})
_CENT = Decimal("0.01")


def to_decimal(value: float) -> Decimal:
    """A quote float as a Decimal with the digits it was quoted with."""
    return Decimal(repr(round(value, 8)))


@dataclass(frozen=True, slots=True)
class OrderTerms:
    """What the fill model needs to know about an order.

    Attributes:
        buy: True for BUY.
        order_type: one of ``ORDER_TYPES``.
        limit: limit price (LMT, STP LMT).
        stop: stop price (STP, STP LMT) or the current trailing stop (TRAIL).
        trail_amount: TRAIL offset in price units.
        trail_percent: TRAIL offset in percent (used when ``trail_amount`` is None).
        triggered: a stop that has already triggered.
    """

    buy: bool
    order_type: str
    limit: Decimal | None = None
    stop: Decimal | None = None
    trail_amount: Decimal | None = None
    trail_percent: Decimal | None = None
    triggered: bool = False


@dataclass(frozen=True, slots=True)
class Fill:
    """The model's decision for one order against one quote.

    Attributes:
        price: the fill price, or None when the order keeps working.
        triggered: the stop has triggered (now or before).
        stop: the (possibly moved) trailing stop.
    """

    price: Decimal | None
    triggered: bool
    stop: Decimal | None


def rejection(
    action: str,
    quantity: Decimal | None,
    order_type: str,
    tif: str,
    limit: Decimal | None,
    aux: Decimal | None,
    trail_percent: Decimal | None,
    contract: SimContract | None,
) -> str | None:
    """The 201 reason text for an order TWS would reject, or None when it is acceptable."""
    if contract is None:
        return "No security definition has been found for the request"
    if not contract.tradable:
        return f"Contract {contract.symbol} ({contract.sec_type}) is not tradable"
    if action not in ("BUY", "SELL"):
        return f"Invalid action {action!r}; use BUY or SELL"
    if quantity is None or quantity <= 0:
        return f"Invalid order size {quantity}: the quantity must be greater than zero"
    if contract.sec_type in ("STK", "OPT") and quantity != quantity.to_integral():
        return f"Fractional size {quantity} is not supported for {contract.sec_type}"
    return _price_rejection(order_type, tif, limit, aux, trail_percent)


def _price_rejection(
    order_type: str, tif: str, limit: Decimal | None, aux: Decimal | None, trail_percent: Decimal | None
) -> str | None:
    if order_type not in ORDER_TYPES:
        return f"Unsupported order type {order_type!r} (the simulator knows {', '.join(sorted(ORDER_TYPES))})"
    if tif not in TIFS:
        return f"Unsupported time in force {tif!r}"
    if order_type in ("LMT", "STP LMT") and (limit is None or limit <= 0):
        return f"A {order_type} order needs a positive limit price"
    if order_type in ("STP", "STP LMT") and (aux is None or aux <= 0):
        return f"A {order_type} order needs a positive stop price"
    if order_type == "TRAIL" and (aux is None or aux <= 0) and (trail_percent is None or trail_percent <= 0):
        return "A TRAIL order needs a trailing amount or percent"
    return None


def off_tick(contract: SimContract, price: Decimal | None) -> bool:
    """True when ``price`` is not a multiple of the contract's increment at that price."""
    if price is None:
        return False
    increment = to_decimal(price_increment(contract, float(price)))
    return price % increment != 0


def commission(
    contract: SimContract, quantity: Decimal, price: Decimal, per_share: Decimal, per_contract: Decimal
) -> Decimal:
    """IBKR Fixed commission of one fill, in USD."""
    if contract.sec_type == "OPT":
        fee = max(Decimal(1), per_contract * quantity)
    elif contract.sec_type == "CASH":
        fee = max(Decimal(2), quantity * price * Decimal("0.00002"))
    else:
        value = quantity * price
        fee = min(max(Decimal(1), per_share * quantity), max(Decimal(1), value * _CENT))
    return fee.quantize(_CENT, rounding=ROUND_HALF_UP)


def _trigger_price(contract: SimContract, buy: bool, q: Quote) -> float | None:
    if contract.sec_type == "STK":
        return q.last if q.last is not None else q.mid
    return q.ask if buy else q.bid


def decide(terms: OrderTerms, contract: SimContract, q: Quote, arrival: bool) -> Fill:
    """Whether ``terms`` fills against quote ``q``, and at what price.

    Args:
        terms: the order.
        contract: its contract (trigger rules differ by type).
        q: the current quote.
        arrival: True when the order (or its modification) has just arrived; a marketable
            limit then fills at the quote, a resting one at its limit.
    """
    buy = terms.buy
    touch = q.ask if buy else q.bid
    touch_size = q.ask_size if buy else q.bid_size
    market = None if touch is None or touch <= 0 or touch_size <= 0 else to_decimal(touch)
    stop, triggered = terms.stop, terms.triggered
    trigger = _trigger_price(contract, buy, q)
    if terms.order_type == "TRAIL" and not triggered and trigger is not None:
        ref = to_decimal(trigger)
        offset = terms.trail_amount if terms.trail_amount else ref * (terms.trail_percent or Decimal(0)) / 100
        candidate = ref + offset if buy else ref - offset
        stop = candidate if stop is None else (min(stop, candidate) if buy else max(stop, candidate))
    if terms.order_type in ("STP", "STP LMT", "TRAIL") and not triggered:
        if trigger is None or stop is None:
            return Fill(None, False, stop)
        ref = to_decimal(trigger)
        triggered = ref >= stop if buy else ref <= stop
        if not triggered:
            return Fill(None, False, stop)
        arrival = True  # a triggered stop becomes a fresh market or limit order
    if market is None:
        return Fill(None, triggered, stop)
    if terms.order_type in ("MKT", "STP", "TRAIL"):
        return Fill(market, triggered, stop)
    limit = terms.limit
    assert limit is not None  # LMT and STP LMT are validated to carry one
    crosses = market <= limit if buy else market >= limit
    if not crosses:
        return Fill(None, triggered, stop)
    return Fill(market if arrival else limit, triggered, stop)
