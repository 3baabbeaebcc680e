"""Option calculators: calculateImpliedVolatility (54) and calculateOptionPrice (55).

TWS answers both with one tickOptionComputation (tick type 13) for the request id. The
simulator prices with the platform's kernels (``implied_vol``, ``compute_greeks``),
the market's risk-free rate and the underlying's dividend yield, to the contract's
settlement (16:00 ET, or 09:30 ET for AM-settled SPX monthlies).
"""

from __future__ import annotations

import math
from datetime import time

import numpy as np

from quanticity.analytics.greeks_engine import compute_greeks
from quanticity.analytics.implied_vol import implied_vol
from quanticity.simulation.calendar import et_datetime
from quanticity.simulation.tws import messages as m
from quanticity.simulation.tws.contracts import SimContract
from quanticity.simulation.tws.handlers_data import resolve_one
from quanticity.simulation.tws.messages import OptionGreeks
from quanticity.simulation.tws.protocol import FieldReader
from quanticity.simulation.tws.session import Handler, Session

__all__ = ["OPTION_HANDLERS", "option_computation"]

_YEAR_S = 365.0 * 86400.0


def option_computation(
    contract: SimContract,
    underlying: float,
    years: float,
    rate: float,
    dividend_yield: float,
    *,
    price: float | None,
    vol: float | None,
) -> OptionGreeks | None:
    """Greeks (TWS units) from an option price (implied vol solved) or from a volatility; None if unsolvable."""
    is_call = contract.right == "C"
    if vol is None:
        solved, _ = implied_vol(np.array([price]), underlying, contract.strike, years, rate, dividend_yield, is_call)
        vol = float(solved[0])
        if not math.isfinite(vol) or vol <= 0:
            return None
    g = compute_greeks(underlying, contract.strike, years, rate, dividend_yield, np.array([vol]), is_call)
    value = float(g.price[0]) if price is None else price
    pv_dividend = underlying * (1.0 - math.exp(-dividend_yield * years))
    return OptionGreeks(
        vol,
        float(g.delta[0]),
        value,
        pv_dividend,
        float(g.gamma[0]),
        float(g.vega[0]) / 100.0,
        float(g.theta[0]) / 365.0,
        underlying,
    )


async def calculate(session: Session, r: FieldReader) -> None:
    """54 / 55: one tickOptionComputation for the request, or error 321."""
    r.skip(1)
    req_id = r.req()
    q = r.contract()
    value, underlying = r.number(), r.number()
    contract = await resolve_one(session, q, req_id)
    if contract is None:
        return
    if contract.sec_type != "OPT" or contract.expiry is None or not value or not underlying or value <= 0:
        session.error(
            req_id,
            321,
            f"Error validating request.-'{r.msg_id}' : cause - needs an option, a positive "
            f"{'price' if r.msg_id == 54 else 'volatility'} and an underlying price",
        )
        return
    state = session.state
    settle = et_datetime(contract.expiry, time(9, 30) if contract.am_settled else time(16))
    years = (settle - state.now()).total_seconds() / _YEAR_S
    if years <= 0:
        session.error(req_id, 321, f"Error validating request.-'{r.msg_id}' : cause - the option has expired")
        return
    rate, dividend_yield = state.market.rate, state.market.dividend_yield(contract.symbol)
    price, vol = (value, None) if r.msg_id == 54 else (None, value)
    und = underlying
    greeks = await state.run(
        lambda: option_computation(contract, und, years, rate, dividend_yield, price=price, vol=vol), option=True
    )
    if greeks is None:
        session.error(req_id, 321, f"Error validating request.-'54' : cause - no volatility reproduces price {value}")
        return
    session.send(m.tick_option_computation(req_id, 13, greeks, price_based=r.msg_id == 54))


async def cancel_calculation(session: Session, r: FieldReader) -> None:
    """56 / 57: the calculations answer at once; nothing is left to cancel."""


OPTION_HANDLERS: dict[int, Handler] = {54: calculate, 55: calculate, 56: cancel_calculation, 57: cancel_calculation}
