"""The TWS simulator on a loopback port, driven by the real ``ib_insync`` client.

Needs neither the broker nor Redis: each test starts its own simulator on port 0 over one
shared simulated market, with a clock that runs in real time from Tuesday 2026-03-03
15:30 ET (inside the regular session and the closing-auction hour), and stops it after.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import ib_insync
import pytest

from quanticity.simulation import SimulatedMarket
from quanticity.simulation.tws import TwsSimConfig, TwsSimulator
from tests.conftest import IN_SESSION, RunningClock

START = IN_SESSION
OPTION_WAIT_S = 45.0  # the first option quote may wait for the analytics kernels to compile

logging.getLogger("ib_insync").setLevel(logging.CRITICAL)  # expected errors (200, 309...) are asserted, not logged


async def wait_until(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


class Errors:
    """Collects ``ib.errorEvent`` as (reqId, code, text)."""

    def __init__(self, ib: ib_insync.IB) -> None:
        self.seen: list[tuple[int, int, str]] = []
        ib.errorEvent += self.on_error

    def on_error(self, req_id: int, code: int, text: str, contract: object) -> None:
        self.seen.append((req_id, code, text))

    def codes(self) -> list[int]:
        return [code for _, code, _ in self.seen]


@pytest.fixture(scope="module")
def market() -> SimulatedMarket:
    return SimulatedMarket(7, START - timedelta(days=1), ["SPY", "QQQ", "IWM", "DIA", "AAPL"])


StartSim = Callable[..., Awaitable[TwsSimulator]]


@pytest.fixture
async def start_sim(market: SimulatedMarket) -> AsyncIterator[StartSim]:
    """Starts simulators (config options as keywords); every one is stopped after the test."""
    started: list[TwsSimulator] = []

    async def start(**options: object) -> TwsSimulator:
        sim = TwsSimulator(market, TwsSimConfig(**options), RunningClock(START))  # type: ignore[arg-type]
        await sim.start()
        started.append(sim)
        # On a fresh machine numba compiles the option kernels (seconds, no cache yet); the
        # calculators would time out in ib_insync's own 4 s wait meanwhile.
        await asyncio.wait_for(sim.warmed_up(), 120)
        return sim

    yield start
    for sim in started:
        await sim.stop()


Connect = Callable[..., Awaitable[ib_insync.IB]]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """Connects ib_insync clients; all are disconnected after the test."""
    clients: list[ib_insync.IB] = []

    async def open_client(sim: TwsSimulator, client_id: int = 7, timeout: float = 4.0) -> ib_insync.IB:
        ib = ib_insync.IB()
        clients.append(ib)
        await ib.connectAsync("127.0.0.1", sim.port, clientId=client_id, timeout=timeout)
        return ib

    yield open_client
    for ib in clients:
        ib.disconnect()


@pytest.fixture
async def sim(start_sim: StartSim) -> TwsSimulator:
    return await start_sim()


@pytest.fixture
async def ib(sim: TwsSimulator, connect: Connect) -> ib_insync.IB:
    return await connect(sim)


async def qualified(ib: ib_insync.IB, contract: ib_insync.Contract) -> ib_insync.Contract:
    result = await ib.qualifyContractsAsync(contract)
    assert result, f"{contract} did not qualify"
    return contract


async def near_option(ib: ib_insync.IB, spy: ib_insync.Contract, right: str = "C") -> ib_insync.Option:
    chains = await ib.reqSecDefOptParamsAsync("SPY", "", "STK", spy.conId)
    chain = next(c for c in chains if c.exchange == "SMART")
    expiry = sorted(chain.expirations)[3]
    strike = min(chain.strikes, key=lambda k: abs(k - 600.0))
    option = ib_insync.Option("SPY", expiry, strike, right, "SMART")
    await qualified(ib, option)
    return option


# ---------------------------------------------------------------------------- connect
async def test_connect_is_fast_and_lists_the_managed_account(sim: TwsSimulator, connect: Connect) -> None:
    t0 = time.perf_counter()
    ib = await connect(sim, client_id=11)
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.0, f"connect took {elapsed:.2f} s (a missing sync reply costs the 4 s timeout)"
    assert ib.managedAccounts() == ["DU1234567"]
    assert ib.client.serverVersion() == 176
    assert sim.connected_client_ids() == [11]


async def test_a_second_connection_with_a_used_client_id_is_refused(sim: TwsSimulator, connect: Connect) -> None:
    first = await connect(sim, client_id=5)
    with pytest.raises((TimeoutError, ConnectionError)):
        await connect(sim, client_id=5, timeout=1.0)
    assert first.isConnected()
    assert sim.connected_client_ids() == [5]


# ---------------------------------------------------------------------------- contracts
async def test_qualifies_stock_index_and_option(ib: ib_insync.IB) -> None:
    spy = await qualified(ib, ib_insync.Stock("SPY", "SMART", "USD"))
    assert (spy.conId, spy.primaryExchange, spy.exchange, spy.secType) == (756733, "ARCA", "SMART", "STK")
    spx = await qualified(ib, ib_insync.Index("SPX", "CBOE", "USD"))
    assert (spx.conId, spx.exchange, spx.secType) == (416904, "CBOE", "IND")
    option = await near_option(ib, spy)
    assert option.conId >= 1_000_000_000
    assert option.localSymbol.startswith("SPY   ") and option.multiplier == "100"
    assert option.tradingClass == "SPY"
    again = ib_insync.Contract(conId=option.conId)
    await qualified(ib, again)
    assert again.localSymbol == option.localSymbol


async def test_unknown_symbol_gets_error_200(ib: ib_insync.IB) -> None:
    errors = Errors(ib)
    assert await ib.qualifyContractsAsync(ib_insync.Stock("ZZZZQ", "SMART", "USD")) == []
    assert await ib.qualifyContractsAsync(ib_insync.Stock("SPX", "SMART", "USD")) == []
    assert errors.codes() == [200, 200]


async def test_sec_def_opt_params_come_from_the_listings(ib: ib_insync.IB) -> None:
    spy = await qualified(ib, ib_insync.Stock("SPY", "SMART", "USD"))
    chains = await ib.reqSecDefOptParamsAsync("SPY", "", "STK", spy.conId)
    smart = next(c for c in chains if c.exchange == "SMART")
    assert smart.tradingClass == "SPY" and smart.multiplier == "100"
    assert smart.expirations[0] == "20260303"  # the same-day expiry is listed
    assert len(smart.strikes) > 50 and 600.0 in smart.strikes
    spx = await qualified(ib, ib_insync.Index("SPX", "CBOE", "USD"))
    classes = {c.tradingClass for c in await ib.reqSecDefOptParamsAsync("SPX", "", "IND", spx.conId)}
    assert classes == {"SPX", "SPXW"}


# ---------------------------------------------------------------------------- level 1
async def test_l1_quotes_stream_with_sizes_and_rt_volume(ib: ib_insync.IB) -> None:
    spy = await qualified(ib, ib_insync.Stock("SPY", "SMART", "USD"))
    ticker = ib.reqMktData(spy, "233", False, False)
    await wait_until(lambda: ticker.bid > 0 and ticker.ask > 0 and ticker.last > 0, what="SPY bid/ask/last")
    assert ticker.bidSize > 0 and ticker.askSize > 0 and ticker.lastSize > 0
    assert ticker.bid < ticker.ask and ticker.ask - ticker.bid < 0.2
    assert ticker.volume > 0 and ticker.close > 0 and ticker.high >= ticker.low > 0
    await wait_until(lambda: ticker.rtVolume > 0 and ticker.vwap > 0, what="RT volume")
    first_bid = (ticker.bid, ticker.bidSize, ticker.ask, ticker.askSize)
    await wait_until(lambda: (ticker.bid, ticker.bidSize, ticker.ask, ticker.askSize) != first_bid, what="a new quote")
    ib.cancelMktData(spy)


async def test_option_ticker_has_model_greeks(ib: ib_insync.IB) -> None:
    spy = await qualified(ib, ib_insync.Stock("SPY", "SMART", "USD"))
    option = await near_option(ib, spy)
    ticker = ib.reqMktData(option, "106,104,101", False, False)
    await wait_until(lambda: ticker.modelGreeks is not None, OPTION_WAIT_S, "model greeks")
    greeks = ticker.modelGreeks
    assert greeks is not None and greeks.delta is not None and greeks.impliedVol is not None
    assert 0.0 < greeks.delta < 1.0 and 0.02 < greeks.impliedVol < 1.0
    assert greeks.undPrice is not None and 500 < greeks.undPrice < 700
    await wait_until(lambda: ticker.impliedVolatility > 0 and ticker.callOpenInterest > 0, 5.0, "IV and OI ticks")
    assert ticker.bid > 0 and ticker.ask > ticker.bid


async def test_closing_auction_fields_on_spy(ib: ib_insync.IB) -> None:
    spy = await qualified(ib, ib_insync.Stock("SPY", "SMART", "USD"))
    ticker = ib.reqMktData(spy, "225", False, False)
    await wait_until(lambda: ticker.auctionPrice > 0 and ticker.auctionVolume > 0, what="auction fields")
    assert ticker.auctionImbalance != 0  # 15:30 ET: the closing imbalance is building
    assert ticker.regulatoryImbalance == 0  # published from 15:50 only
    assert abs(ticker.auctionPrice - ticker.bid) < 1.0


async def test_snapshot_ends_with_tick_snapshot_end(ib: ib_insync.IB) -> None:
    (ticker,) = await asyncio.wait_for(ib.reqTickersAsync(ib_insync.Stock("QQQ", "SMART", "USD")), 5)
    assert ticker.bid > 0 and ticker.ask > 0


async def test_not_entitled_symbol_gets_354_then_delayed_data(start_sim: StartSim, connect: Connect) -> None:
    sim = await start_sim(not_entitled=frozenset({"QQQ"}))
    ib = await connect(sim)
    errors = Errors(ib)
    qqq = await qualified(ib, ib_insync.Stock("QQQ", "SMART", "USD"))
    live = ib.reqMktData(qqq)
    await wait_until(lambda: 354 in errors.codes(), what="error 354")
    await asyncio.sleep(0.6)
    assert live.bid != live.bid  # nan: no live data
    ib.reqMarketDataType(3)
    delayed_contract = ib_insync.Stock("QQQ", "SMART", "USD")
    delayed = ib.reqMktData(delayed_contract)
    await wait_until(lambda: delayed.bid > 0 and delayed.ask > 0, what="delayed quotes")
    assert 10167 in errors.codes()
    assert delayed.marketDataType == 3
    assert {t.tickType for t in delayed.ticks} <= {66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 45, 32, 33, 84, 49}


# ---------------------------------------------------------------------------- depth and tick-by-tick
async def test_depth_book_and_the_fourth_request_limit(ib: ib_insync.IB) -> None:
    errors = Errors(ib)
    spy = ib_insync.Stock("SPY", "ARCA", "USD")
    ticker = ib.reqMktDepth(spy, numRows=10)
    await wait_until(lambda: len(ticker.domBids) == 10 and len(ticker.domAsks) == 10, what="a 10-level book")
    bids = [level.price for level in ticker.domBids]
    asks = [level.price for level in ticker.domAsks]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
    assert bids[0] < asks[0]
    assert all(level.size > 0 and level.marketMaker for level in ticker.domBids + ticker.domAsks)
    await wait_until(lambda: any(t.operation == 1 for t in ticker.domTicks), what="book updates")
    ib.reqMktDepth(ib_insync.Stock("QQQ", "ARCA", "USD"), numRows=5)
    ib.reqMktDepth(ib_insync.Stock("IWM", "ARCA", "USD"), numRows=5)
    fourth = ib_insync.Stock("AAPL", "ISLAND", "USD")
    ib.reqMktDepth(fourth, numRows=5)
    await wait_until(lambda: 309 in errors.codes(), what="error 309")
    assert len(ticker.domBids) == 10  # the book kept its shape through inserts and deletes


async def test_smart_depth_is_refused(ib: ib_insync.IB) -> None:
    errors = Errors(ib)
    ib.reqMktDepth(ib_insync.Stock("SPY", "SMART", "USD"), numRows=5)
    ib.reqMktDepth(ib_insync.Stock("QQQ", "ARCA", "USD"), numRows=5, isSmartDepth=True)
    await wait_until(lambda: errors.codes().count(10092) == 2, what="two 10092 refusals")


async def test_mkt_depth_exchanges(ib: ib_insync.IB) -> None:
    exchanges = await ib.reqMktDepthExchangesAsync()
    assert {"ARCA", "ISLAND", "NYSE"} <= {d.exchange for d in exchanges}


async def test_tick_by_tick_bid_ask_and_last(ib: ib_insync.IB) -> None:
    spy = await qualified(ib, ib_insync.Stock("SPY", "SMART", "USD"))
    quotes = ib.reqTickByTickData(spy, "BidAsk")
    await wait_until(lambda: len([t for t in quotes.tickByTicks if hasattr(t, "bidPrice")]) > 0, what="BidAsk")
    tick = quotes.tickByTicks[-1]
    assert 0 < tick.bidPrice < tick.askPrice and tick.bidSize > 0
    qqq = await qualified(ib, ib_insync.Stock("QQQ", "SMART", "USD"))
    trades = ib.reqTickByTickData(qqq, "Last")
    await wait_until(lambda: trades.last > 0 and trades.lastSize > 0, what="Last prints")


# ---------------------------------------------------------------------------- bars
async def test_realtime_bars_arrive_every_five_seconds(ib: ib_insync.IB) -> None:
    spy = await qualified(ib, ib_insync.Stock("SPY", "SMART", "USD"))
    bars = ib.reqRealTimeBars(spy, 5, "TRADES", False)
    await wait_until(lambda: len(bars) >= 1, 8.0, "a real-time bar")
    bar = bars[-1]
    assert bar.time.second % 5 == 0
    assert bar.low <= min(bar.open_, bar.close) <= max(bar.open_, bar.close) <= bar.high
    assert bar.volume > 0


async def test_historical_bars_then_keep_up_to_date(ib: ib_insync.IB) -> None:
    spy = await qualified(ib, ib_insync.Stock("SPY", "SMART", "USD"))
    bars = await ib.reqHistoricalDataAsync(spy, "", "1800 S", "1 min", "TRADES", False, keepUpToDate=True)
    assert 25 <= len(bars) <= 31
    first = bars[0]
    assert first.date.tzinfo is not None and first.volume > 0
    assert all(b.low <= min(b.open, b.close) and max(b.open, b.close) <= b.high for b in bars)
    count_before, last_before = len(bars), bars[-1]
    updates: list[bool] = []
    bars.updateEvent += lambda _bars, has_new: updates.append(has_new)
    await wait_until(lambda: updates, 6.0, "a historicalDataUpdate")
    last = bars[-1]
    assert len(bars) >= count_before and (last != last_before or len(bars) > count_before)
    assert last.low <= min(last.open, last.close) and max(last.open, last.close) <= last.high  # o/c/h/l order
    daily = await ib.reqHistoricalDataAsync(spy, "", "10 D", "1 day", "TRADES", True)
    assert len(daily) == 10 and daily[-1].date == START.date()


async def test_watchdog_eurusd_probe_gets_bars(ib: ib_insync.IB) -> None:
    bars = await ib.reqHistoricalDataAsync(ib_insync.Forex("EURUSD"), "", "30 S", "5 secs", "MIDPOINT", False)
    assert len(bars) >= 1
    assert 0.8 < bars[-1].close < 1.5


# ---------------------------------------------------------------------------- orders and account
async def test_marketable_limit_fills_with_commission(sim: TwsSimulator, ib: ib_insync.IB) -> None:
    spy = await qualified(ib, ib_insync.Stock("SPY", "SMART", "USD"))
    ticker = ib.reqMktData(spy)
    await wait_until(lambda: ticker.ask > 0, what="SPY ask")
    trade = ib.placeOrder(spy, ib_insync.LimitOrder("BUY", 10, round(ticker.ask * 1.01, 2), orderRef="t-buy"))
    await wait_until(lambda: trade.orderStatus.status == "Filled" and trade.fills, what="Filled")
    await wait_until(lambda: trade.fills[0].commissionReport.commission > 0, what="commission report")
    statuses = [entry.status for entry in trade.log]
    assert statuses[:3] == ["PendingSubmit", "PreSubmitted", "Submitted"] and statuses[-1] == "Filled"
    fill = trade.fills[0]
    assert fill.execution.side == "BOT" and fill.execution.shares == 10 and fill.execution.orderRef == "t-buy"
    assert fill.execution.price <= round(ticker.ask * 1.01, 2)
    assert fill.execution.time.tzinfo is not None and abs(fill.execution.time - START) < timedelta(minutes=5)
    assert fill.commissionReport.commission == 1.0  # 10 shares: the $1 minimum
    assert trade.orderStatus.avgFillPrice == fill.execution.price and trade.orderStatus.remaining == 0
    assert [e.shares for e in sim.executions] == [10]


async def test_account_portfolio_and_pnl_after_a_fill(ib: ib_insync.IB) -> None:
    spy = await qualified(ib, ib_insync.Stock("SPY", "SMART", "USD"))
    pnl = ib.reqPnL("DU1234567")
    trade = ib.placeOrder(spy, ib_insync.MarketOrder("BUY", 100))
    await wait_until(lambda: trade.orderStatus.status == "Filled", what="Filled")
    price = trade.orderStatus.avgFillPrice
    await wait_until(lambda: any(p.contract.conId == spy.conId for p in ib.portfolio()), what="portfolio row")
    item = next(p for p in ib.portfolio() if p.contract.conId == spy.conId)
    assert item.position == 100 and item.averageCost == pytest.approx(price + 0.01, abs=1e-6)  # $1 commission
    values = {v.tag: float(v.value) for v in ib.accountValues() if v.currency == "USD" and v.tag != "Currency"}
    assert values["TotalCashValue"] == pytest.approx(1_000_000 - 100 * price - 1.0, abs=0.01)
    assert values["NetLiquidation"] == pytest.approx(1_000_000, abs=200)
    assert values["GrossPositionValue"] == pytest.approx(100 * price, abs=200)
    assert {"BuyingPower", "AvailableFunds", "ExcessLiquidity", "UnrealizedPnL", "RealizedPnL"} <= values.keys()
    assert [p.position for p in ib.positions() if p.contract.conId == spy.conId] == [100]
    single = ib.reqPnLSingle("DU1234567", "", spy.conId)
    await wait_until(lambda: single.position == 100 and single.value == single.value, what="pnlSingle")
    await wait_until(lambda: pnl.unrealizedPnL == pnl.unrealizedPnL, what="pnl")
    assert pnl.dailyPnL == pytest.approx(pnl.unrealizedPnL, abs=0.02)  # opened today: daily = unrealized
    summary = {v.tag: v.value for v in await ib.accountSummaryAsync()}
    assert float(summary["NetLiquidation"]) > 0 and summary["AccountType"] == "INDIVIDUAL"


async def test_resting_limit_then_cancel(ib: ib_insync.IB) -> None:
    errors = Errors(ib)
    spy = await qualified(ib, ib_insync.Stock("SPY", "SMART", "USD"))
    trade = ib.placeOrder(spy, ib_insync.LimitOrder("BUY", 5, 500.00))
    await wait_until(lambda: trade.orderStatus.status == "Submitted", what="Submitted")
    await asyncio.sleep(0.6)
    assert trade.orderStatus.status == "Submitted" and not trade.fills
    ib.cancelOrder(trade.order)
    await wait_until(lambda: trade.orderStatus.status == "Cancelled", what="Cancelled")
    await wait_until(lambda: 202 in errors.codes(), what="error 202")


async def test_modify_a_resting_order_until_it_fills(sim: TwsSimulator, ib: ib_insync.IB) -> None:
    spy = await qualified(ib, ib_insync.Stock("SPY", "SMART", "USD"))
    order = ib_insync.LimitOrder("SELL", 3, 700.00)
    trade = ib.placeOrder(spy, order)
    await wait_until(lambda: trade.orderStatus.status == "Submitted", what="Submitted")
    order.lmtPrice = 690.00
    ib.placeOrder(spy, order)
    await wait_until(lambda: any(e.message == "Modified" for e in trade.log), what="the modification")
    assert [o.limit for o in sim.orders if o.order_id == order.orderId] == [pytest.approx(690)]
    order.lmtPrice = 500.00
    ib.placeOrder(spy, order)
    await wait_until(lambda: trade.orderStatus.status == "Filled", what="Filled after the modification")
    assert trade.fills[0].execution.side == "SLD" and trade.fills[0].execution.price > 500


async def test_invalid_order_is_rejected_with_201(ib: ib_insync.IB) -> None:
    errors = Errors(ib)
    spy = await qualified(ib, ib_insync.Stock("SPY", "SMART", "USD"))
    trade = ib.placeOrder(spy, ib_insync.LimitOrder("BUY", 0, 600.00))
    await wait_until(lambda: trade.orderStatus.status == "Cancelled", what="the rejection")
    unknown = ib.placeOrder(ib_insync.Stock("ZZZZQ", "SMART", "USD"), ib_insync.MarketOrder("BUY", 1))
    await wait_until(lambda: unknown.orderStatus.status == "Cancelled", what="the rejection of an unknown contract")
    assert errors.codes() == [201, 201]


async def test_pacing_violation_gets_error_100(ib: ib_insync.IB) -> None:
    errors = Errors(ib)
    ib.client.MaxRequests = 0  # the client throttles itself to 45/s; turn that off to exceed 50/s
    for _ in range(80):
        ib.client.reqCurrentTime()
    await wait_until(lambda: 100 in errors.codes(), what="error 100")
    assert ib.isConnected()


async def test_requests_are_paced_on_arrival_not_when_a_stalled_server_gets_to_them(
    sim: TwsSimulator, ib: ib_insync.IB
) -> None:
    # 35 requests/s for 2 s while the server answers nothing: under TWS's 50/s as sent, so
    # all of them are answered once it resumes, none dropped with error 100.
    errors = Errors(ib)
    sim.stall(2.5)
    pending = []
    for _ in range(2):
        for _ in range(35):
            pending.append(asyncio.ensure_future(ib.reqContractDetailsAsync(ib_insync.Stock("SPY", "SMART", "USD"))))
            await asyncio.sleep(1 / 35)
    answered = await asyncio.wait_for(asyncio.gather(*pending), 10)
    assert [len(details) for details in answered] == [1] * 70 and 100 not in errors.codes()


# ---------------------------------------------------------------------------- faults
async def test_drop_connections_then_reconnect_sees_orders_and_fills(sim: TwsSimulator, connect: Connect) -> None:
    ib = await connect(sim, client_id=21)
    spy = await qualified(ib, ib_insync.Stock("SPY", "SMART", "USD"))
    filled = ib.placeOrder(spy, ib_insync.MarketOrder("BUY", 2))
    resting = ib.placeOrder(spy, ib_insync.LimitOrder("BUY", 1, 400.00))
    await wait_until(lambda: filled.orderStatus.status == "Filled" and resting.orderStatus.status == "Submitted")
    lost: list[bool] = []
    ib.disconnectedEvent += lambda: lost.append(True)
    assert sim.drop_connections(21) == 1
    await wait_until(lambda: lost and not ib.isConnected(), what="disconnectedEvent")
    await wait_until(lambda: sim.connected_client_ids() == [], what="the server to drop the session")
    again = await connect(sim, client_id=21)
    open_ids = {t.order.orderId for t in again.openTrades()}
    assert resting.order.orderId in open_ids
    assert {f.execution.execId for f in again.fills()} == {f.execution.execId for f in filled.fills}
    completed = await again.reqCompletedOrdersAsync(apiOnly=True)
    assert [t.orderStatus.status for t in completed] == ["Filled"]


async def test_restart_then_reconnect(sim: TwsSimulator, connect: Connect) -> None:
    ib = await connect(sim, client_id=31)
    port = sim.port
    restart = asyncio.create_task(sim.restart(1.0))
    await wait_until(lambda: not ib.isConnected(), what="the disconnect")
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    await restart
    assert sim.port == port
    again = await connect(sim, client_id=31)
    assert again.managedAccounts() == ["DU1234567"]
