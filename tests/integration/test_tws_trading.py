"""Trading against the TWS simulator with ib_insync: options, stops, brackets, what-if, global cancel,
executions and the account seen by a second client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import ib_insync
import pytest

from quanticity.simulation.tws import TwsSimulator
from tests.integration.test_tws_simulator import (  # the fixtures are shared: pytest finds them by name here
    OPTION_WAIT_S,
    Connect,
    Errors,
    connect,
    ib,
    market,
    near_option,
    qualified,
    sim,
    start_sim,
    wait_until,
)

__all__ = ["connect", "ib", "market", "sim", "start_sim"]  # re-exported fixtures


async def test_option_order_fills_at_the_chain_quote_with_the_multiplier(sim: TwsSimulator, ib: ib_insync.IB) -> None:
    spy = await qualified(ib, ib_insync.Stock("SPY", "SMART", "USD"))
    option = await near_option(ib, spy, "P")
    ticker = ib.reqMktData(option)
    await wait_until(lambda: ticker.ask > 0, OPTION_WAIT_S, "the option ask")
    trade = ib.placeOrder(option, ib_insync.MarketOrder("BUY", 2))
    await wait_until(lambda: trade.orderStatus.status == "Filled", OPTION_WAIT_S, "the option fill")
    price = trade.fills[0].execution.price
    await wait_until(lambda: trade.fills[0].commissionReport.commission > 0, what="the commission report")
    assert trade.fills[0].commissionReport.commission == 1.30  # 2 contracts x $0.65
    position = next(p for p in await ib.reqPositionsAsync() if p.contract.conId == option.conId)
    assert position.position == 2 and position.avgCost == pytest.approx(price * 100 + 0.65, abs=1e-6)
    assert float(sim.account.cash) == pytest.approx(1_000_000 - 200 * price - 1.30, abs=1e-6)


async def test_a_stop_order_triggers_and_fills(sim: TwsSimulator, ib: ib_insync.IB) -> None:
    spy = await qualified(ib, ib_insync.Stock("SPY", "SMART", "USD"))
    ticker = ib.reqMktData(spy)
    await wait_until(lambda: ticker.last > 0, what="SPY last")
    stop = round(ticker.last - 5.0, 2)
    resting = ib.placeOrder(spy, ib_insync.StopOrder("SELL", 1, stop))
    triggered = ib.placeOrder(spy, ib_insync.StopOrder("BUY", 1, round(ticker.last - 1.0, 2)))
    await wait_until(lambda: triggered.orderStatus.status == "Filled", what="the triggered stop")
    assert resting.orderStatus.status == "Submitted"


async def test_bracket_children_wait_for_their_parent(ib: ib_insync.IB) -> None:
    spy = await qualified(ib, ib_insync.Stock("SPY", "SMART", "USD"))
    bracket = ib.bracketOrder("BUY", 1, 400.00, takeProfitPrice=800.00, stopLossPrice=300.00)
    trades = [ib.placeOrder(spy, order) for order in bracket]
    await wait_until(lambda: [t.orderStatus.status for t in trades] == ["Submitted", "PreSubmitted", "PreSubmitted"])
    ib.cancelOrder(bracket.parent)
    await wait_until(lambda: all(t.orderStatus.status == "Cancelled" for t in trades), what="the bracket cancel")


async def test_what_if_reports_margin_without_placing(sim: TwsSimulator, ib: ib_insync.IB) -> None:
    spy = await qualified(ib, ib_insync.Stock("SPY", "SMART", "USD"))
    state = await asyncio.wait_for(ib.whatIfOrderAsync(spy, ib_insync.LimitOrder("BUY", 100, 600.00)), 5)
    assert float(state.initMarginChange) == pytest.approx(0.5 * 100 * 600.0)
    assert float(state.commission) == 1.0 and sim.orders == []


async def test_global_cancel_and_all_open_orders(sim: TwsSimulator, connect: Connect) -> None:
    first = await connect(sim, client_id=1)
    second = await connect(sim, client_id=2)
    spy = await qualified(first, ib_insync.Stock("SPY", "SMART", "USD"))
    a = first.placeOrder(spy, ib_insync.LimitOrder("BUY", 1, 450.00))
    b = second.placeOrder(ib_insync.Stock("SPY", "SMART", "USD"), ib_insync.LimitOrder("BUY", 1, 451.00))
    await wait_until(lambda: a.orderStatus.status == b.orderStatus.status == "Submitted", what="two resting orders")
    every = await first.reqAllOpenOrdersAsync()
    assert {(t.order.clientId, t.order.orderId) for t in every} == {(1, a.order.orderId), (2, b.order.orderId)}
    first.reqGlobalCancel()
    await wait_until(lambda: a.orderStatus.status == b.orderStatus.status == "Cancelled", what="the global cancel")


async def test_executions_filter_and_account_push_to_another_client(sim: TwsSimulator, connect: Connect) -> None:
    trader = await connect(sim, client_id=3)
    watcher = await connect(sim, client_id=4)
    spy = await qualified(trader, ib_insync.Stock("SPY", "SMART", "USD"))
    qqq = await qualified(trader, ib_insync.Stock("QQQ", "SMART", "USD"))
    trades = [trader.placeOrder(c, ib_insync.MarketOrder("BUY", 5)) for c in (spy, qqq)]
    await wait_until(lambda: all(t.orderStatus.status == "Filled" for t in trades), what="two fills")
    await wait_until(lambda: {p.contract.symbol for p in watcher.portfolio()} == {"SPY", "QQQ"}, what="the push")
    fills = await watcher.reqExecutionsAsync(ib_insync.ExecutionFilter(symbol="QQQ"))
    assert [(f.contract.symbol, f.execution.clientId) for f in fills] == [("QQQ", 3)]
    sells = await watcher.reqExecutionsAsync(ib_insync.ExecutionFilter(side="SELL"))
    assert sells == []


async def test_cancel_mkt_data_stops_the_stream(sim: TwsSimulator, ib: ib_insync.IB) -> None:
    spy = await qualified(ib, ib_insync.Stock("SPY", "SMART", "USD"))
    ticker = ib.reqMktData(spy)
    await wait_until(lambda: ticker.bid > 0, what="quotes")
    assert sim.subscription_counts()["mkt_data"] == 1
    ib.cancelMktData(spy)
    await wait_until(lambda: sim.subscription_counts()["mkt_data"] == 0, what="the cancel")


async def test_reject_an_off_tick_price(ib: ib_insync.IB) -> None:
    errors = Errors(ib)
    spy = await qualified(ib, ib_insync.Stock("SPY", "SMART", "USD"))
    trade = ib.placeOrder(spy, ib_insync.LimitOrder("BUY", 1, 500.005))
    await wait_until(lambda: trade.orderStatus.status == "Cancelled", what="the rejection")
    assert 110 in errors.codes()


async def _calculated(
    ib: ib_insync.IB, option: ib_insync.Contract, send: Callable[[int], None]
) -> tuple[ib_insync.OptionComputation, float]:
    # ib_insync's calculate*Async give up after a fixed 4 s; a loaded machine may need more,
    # so wait on the same request future with the suite's option timeout.
    req_id = ib.client.getReqId()
    future = ib.wrapper.startReq(req_id, option)
    started = time.monotonic()
    send(req_id)
    result = await asyncio.wait_for(future, OPTION_WAIT_S)
    return result, time.monotonic() - started


async def test_option_calculators_round_trip(ib: ib_insync.IB) -> None:
    spy = await qualified(ib, ib_insync.Stock("SPY", "SMART", "USD"))
    option = await near_option(ib, spy)
    asked = time.monotonic()
    priced, _ = await _calculated(ib, option, lambda r: ib.client.calculateOptionPrice(r, option, 0.20, 600.0, []))
    assert priced.optPrice is not None and priced.optPrice > 0 and priced.delta is not None
    implied, _ = await _calculated(
        ib, option, lambda r: ib.client.calculateImpliedVolatility(r, option, priced.optPrice, 600.0, [])
    )
    elapsed = time.monotonic() - asked
    # The simulator's clock runs: between the two answers the option lost up to ``elapsed``
    # seconds of time value (theta is per day, vega per vol point), so the same price
    # implies a slightly higher vol. Beyond that drift the round trip is exact to 1e-6.
    assert priced.theta is not None and priced.vega is not None and implied.impliedVol is not None
    drift = abs(priced.theta) / 86_400 * elapsed / (priced.vega * 100)
    assert implied.impliedVol == pytest.approx(0.20, abs=1e-6 + drift)
