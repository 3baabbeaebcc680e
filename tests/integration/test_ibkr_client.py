"""The IBKR client side against the TWS simulator, through the unmodified ib_insync client.

Connection supervision (drop → reconnect → every subscription back, gap measured), the
market data feed and depth rotation, and the order router's idempotent placement with the
ledger on the real Redis Stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import structlog
from ib_insync import Contract, MarketOrder, Ticker
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from quanticity.execution.ibkr_gateway import IbkrOrderGateway
from quanticity.execution.order_router import OrderAck, OrderRequest, OrderRouter
from quanticity.ibkr.account import AccountMonitor
from quanticity.ibkr.bar_aggregator import TradeBarAggregator
from quanticity.ibkr.connection_manager import CONNECTED, Endpoint, IbkrConnection
from quanticity.ibkr.contracts import qualify, underlying_contract
from quanticity.ibkr.market_data import MarketDataFeed, RecordStamp
from quanticity.ibkr.market_depth import DepthRotator
from quanticity.ibkr.metrics import IbkrMetrics
from quanticity.ibkr.settings import DepthSettings, IbkrSettings
from quanticity.observability.metrics import Metrics
from quanticity.schemas import Bar, DepthSnapshot, Fill, OrderEvent, Record, Tick, UnderlyingQuote
from quanticity.simulation.market import SimulatedMarket
from quanticity.simulation.tws.config import TwsSimConfig
from quanticity.simulation.tws.server import TwsSimulator
from quanticity.storage.ibkr_events import OrderLedger
from quanticity.storage.redis_timeseries import TimeSeriesWriter
from tests.conftest import RunningClock, Stack, unique

pytestmark = pytest.mark.integration

REQ_MKT_DATA = 1  # the client message id of reqMktData (ib_insync.client)

FAST = IbkrSettings(
    heartbeat_interval_s=0.5,
    heartbeat_timeout_s=1.0,
    reconnect_backoff_s=[0.1, 0.25, 0.5, 1.0],
    connect_timeout_s=5.0,
)


@pytest.fixture
async def tws() -> AsyncIterator[tuple[TwsSimulator, int]]:
    market = SimulatedMarket(7, datetime.now(UTC), ["SPY", "QQQ", "IWM", "SPX", "AAPL", "MSFT", "NVDA"])
    sim = TwsSimulator(market, TwsSimConfig(tick_interval_s=0.1))
    port = await sim.start("127.0.0.1", 0)
    yield sim, port
    await sim.stop()


_REGISTRIES: dict[int, CollectorRegistry] = {}


def _metric(metrics: IbkrMetrics, name: str, **labels: str) -> float:
    """What the code under test recorded in its own registry."""
    return _REGISTRIES[id(metrics)].get_sample_value(name, labels) or 0.0


def _connection(port: int, client_id: int, role: str = "ingest-ibkr") -> tuple[IbkrConnection, IbkrMetrics]:
    registry = CollectorRegistry()
    metrics = IbkrMetrics(registry)
    _REGISTRIES[id(metrics)] = registry
    return IbkrConnection(FAST, Endpoint("127.0.0.1", port, client_id, role), metrics), metrics


Streaming = tuple[IbkrConnection, IbkrMetrics, MarketDataFeed, list[Record], list[Contract]]


async def _streaming(port: int, client_id: int, symbols: Sequence[str], **feed_options: Any) -> Streaming:
    """A connected connection (the caller stops it), its metrics, a feed and the records it
    publishes, and ``symbols``' underlyings qualified."""
    conn, metrics = _connection(port, client_id)
    records: list[Record] = []
    feed = MarketDataFeed(conn, records.append, RecordStamp("run-t", "sim"), metrics, **feed_options)
    await conn.start()
    await conn.wait_connected(10)
    try:
        contracts = await qualify(conn.ib, [underlying_contract(s) for s in symbols])
    except BaseException:
        await conn.stop()
        raise
    return conn, metrics, feed, records, contracts


async def _until(predicate: object, timeout_s: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if predicate():  # type: ignore[operator]
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout_s} s")


@dataclass
class Trading:
    """The execution role's order path against the simulator, on the session's Redis Stack."""

    conn: IbkrConnection
    metrics: IbkrMetrics
    ledger: OrderLedger
    gateway: IbkrOrderGateway
    router: OrderRouter
    published: list[Record]
    acks: list[OrderAck]

    async def spy_quote(self) -> Ticker:
        """A live SPY ticker with a bid and an ask."""
        spy = (await qualify(self.conn.ib, [underlying_contract("SPY")]))[0]
        ticker = self.conn.ib.reqMktData(spy, "", False, False)
        await _until(lambda: ticker.bid == ticker.bid and ticker.bid > 0 and ticker.ask > 0, 10, "SPY bid/ask")
        return ticker


@contextlib.asynccontextmanager
async def _trading(port: int, client_id: int, stack: Stack) -> AsyncIterator[Trading]:
    conn, metrics = _connection(port, client_id, role="execution")
    redis = Redis.from_url(stack.redis_url)
    published: list[Record] = []

    async def publish(record: Record) -> None:
        published.append(record)

    gateway = IbkrOrderGateway(conn)
    ledger = OrderLedger(redis, unique())
    router = OrderRouter(gateway, ledger, publish, metrics, "run-t", "sim")
    gateway.attach(router)
    trading = Trading(conn, metrics, ledger, gateway, router, published, [])
    router.register_ack_listener(trading.acks.append)
    await conn.start()
    await conn.wait_connected(10)
    try:
        yield trading
    finally:
        await router.close()
        await conn.stop()
        await redis.aclose()


async def _while_tws_restarts(sim: TwsSimulator, conn: IbkrConnection, change: Callable[[], None]) -> None:
    """Restart TWS; while no client is connected, ``change`` its book; wait until ``conn`` is back."""
    down = asyncio.ensure_future(sim.restart(2.0))
    await _until(lambda: conn.state != CONNECTED, 5, "the session is down")
    change()
    await down
    await conn.wait_connected(20)


async def test_drop_reconnects_and_restores_every_subscription(tws: tuple[TwsSimulator, int]) -> None:
    sim, port = tws
    conn, metrics, feed, records, contracts = await _streaming(
        port, 111, ("SPY", "QQQ", "SPX"), underlying_ticks="233,225"
    )
    await feed.subscribe_l1(contracts, "underlying")
    await feed.subscribe_tick_by_tick(contracts[:1])
    await _until(
        lambda: {r.symbol for r in records if isinstance(r, UnderlyingQuote)} >= {"SPY", "QQQ", "SPX"}, 10, "L1"
    )
    # Where the old connection's records end: the reconnect can be back within milliseconds, so
    # counting after the disconnect is seen could take the new connection's first quotes for old
    # ones (an index does not tick outside its session: its opening quote is all it sends).
    marks: list[int] = []
    conn.ib.disconnectedEvent += lambda: marks.append(len(records))
    try:
        assert sim.drop_connections() >= 1
        await _until(lambda: _metric(metrics, "ibkr_disconnects_total", role="ingest-ibkr") == 1, 5, "disconnect seen")
        before = marks[0]
        took = await _until(
            lambda: (
                conn.state == CONNECTED
                and {r.symbol for r in records[before:] if isinstance(r, UnderlyingQuote)} >= {"SPY", "QQQ", "SPX"}
            ),
            10,
            "reconnect with every subscription back",
        )
        assert took < 10
        assert _metric(metrics, "ibkr_reconnects_total", role="ingest-ibkr") == 1
        assert _metric(metrics, "ibkr_gap_seconds_count", role="ingest-ibkr") == 1  # the gap was measured
        assert _metric(metrics, "ibkr_resubscribe_seconds_count", role="ingest-ibkr") == 1
        assert len(conn.subscription_names) == 3 + 2  # 3 L1 lines + AllLast and BidAsk of SPY
        ids = [r.record_id for r in records]
        assert len(ids) == len(set(ids)), "a record was published twice"
    finally:
        await conn.stop()


async def test_depth_rotates_through_more_venues_than_slots(tws: tuple[TwsSimulator, int]) -> None:
    _, port = tws
    conn, metrics = _connection(port, 112)
    books: list[Record] = []
    settings = DepthSettings(
        venues=["SPY@ARCA", "QQQ@ISLAND", "IWM@ARCA", "AAPL@ISLAND", "MSFT@ISLAND"],
        dwell_s=0.6,
        snapshot_interval_s=0.2,
    )
    rotator = DepthRotator(conn, settings, books.append, RecordStamp("run-t", "sim"), metrics)
    await conn.start()
    await conn.wait_connected(10)
    await rotator.start()
    try:
        seen = lambda: {(b.symbol, b.venue) for b in books if isinstance(b, DepthSnapshot)}  # noqa: E731
        await _until(lambda: len(seen()) >= 5, 15, "all five venues published a book")
        assert len(rotator.active) <= 3
        assert _metric(metrics, "ibkr_depth_errors_total", code="309") == 0  # never asked for a 4th slot
        snapshots = [b for b in books if isinstance(b, DepthSnapshot)]
        assert all(len(b.bids) <= 10 and len(b.asks) <= 10 for b in snapshots)
        # A book just subscribed may be caught while its first levels arrive (one side only, as from TWS).
        await _until(
            lambda: any(isinstance(b, DepthSnapshot) and b.bids and b.asks for b in books), 10, "a two-sided book"
        )
        two_sided = [b for b in books if isinstance(b, DepthSnapshot) and b.bids and b.asks]
        assert all(b.bids[0].price < b.asks[0].price for b in two_sided)
    finally:
        await rotator.stop()
        await conn.stop()


async def test_a_depth_update_still_on_the_wire_when_a_slot_rotates_out_is_absorbed(
    tws: tuple[TwsSimulator, int], caplog: pytest.LogCaptureFixture
) -> None:
    """TWS keeps sending a cancelled book's updates until it reads the cancel; ib_insync still
    routes them to the ticker. ``IB.cancelMktDepth`` empties that ticker's book, so an update
    of position 3 raised in ib_insync's decoder (one error log line per message, 39 in one
    rotation of ``make run``). The rotator keeps the old book until the venue returns."""
    _, port = tws
    conn, metrics = _connection(port, 114)
    settings = DepthSettings(venues=["SPY@ARCA", "QQQ@ISLAND"], slots=1, dwell_s=0.5, snapshot_interval_s=0.2)
    rotator = DepthRotator(conn, settings, lambda _: None, RecordStamp("run-t", "sim"), metrics)
    await conn.start()
    await conn.wait_connected(10)
    await rotator.start()
    try:

        def spy_book() -> bool:
            slot = rotator._slots[0] if rotator._slots else None
            return slot is not None and str(slot.venue) == "SPY@ARCA" and len(getattr(slot.ticker, "domBids", [])) >= 4

        await _until(spy_book, 10, "SPY@ARCA holds the slot with four bid levels")
        ticker = rotator._slots[0].ticker
        req_id = conn.ib.wrapper.ticker2ReqId["mktDepth"][ticker]
        await _until(lambda: rotator.active == ["QQQ@ISLAND"], 10, "the slot rotated to QQQ")
        caplog.clear()
        with caplog.at_level("ERROR", logger="ib_insync.Decoder"):
            # updateMktDepthL2 (13) of the cancelled request, as TWS sends it: update (1) of bid (1) level 3
            conn.ib.client.decoder.interpret(["13", "1", str(req_id), "3", "", "1", "1", "600.01", "100"])
        assert not [r for r in caplog.records if r.name == "ib_insync.Decoder"], caplog.text
        await _until(lambda: rotator.active == ["SPY@ARCA"], 10, "SPY@ARCA back in the slot")
        fresh = rotator._slots[0].ticker
        assert fresh is not None
        await _until(lambda: len(fresh.domBids) >= 1, 10, "SPY's book again")
        await asyncio.sleep(0.3)
        # the returning venue's book starts empty: the old levels are not left under the new ones
        assert len(fresh.domBids) <= settings.rows and len(fresh.domAsks) <= settings.rows
    finally:
        await rotator.stop()
        await conn.stop()


async def test_router_fills_once_per_signal(tws: tuple[TwsSimulator, int], stack: Stack) -> None:
    _, port = tws
    async with _trading(port, 201, stack) as t:
        ticker = await t.spy_quote()
        limit = Decimal(str(round(ticker.ask * 1.01, 2)))
        request = OrderRequest(signal_id=f"sig-{unique()}", symbol="SPY", side="buy", quantity=3, limit_price=limit)
        first = await t.router.submit(request)
        assert first.status == "submitted" and not first.duplicate and first.broker_order_id
        await _until(lambda: any(a.status == "filled" for a in t.acks), 10, "Filled")
        again = await t.router.submit(request)
        assert again.duplicate and again.order_id == first.order_id
        order = await t.ledger.load(first.order_id)
        assert order["status"] == "filled" and order["filled"] == "3"
        assert order["broker_order_id"] == str(first.broker_order_id)
        statuses = [e["status"] for e in await t.ledger.status_log(first.order_id)]
        assert statuses[0] == "submitted" and statuses[-1] == "filled"
        fills = [r for r in t.published if isinstance(r, Fill)]
        assert sum(f.quantity for f in fills) == 3 and all(f.order_id == first.order_id for f in fills)
        assert {e.status for e in t.published if isinstance(e, OrderEvent)} >= {"pending", "submitted", "filled"}
        placed = [trade for trade in t.conn.ib.trades() if trade.order.orderRef == request.token]
        assert len(placed) == 1, "the resubmitted signal created a second order"
        assert _metric(t.metrics, "ibkr_orders_deduplicated_total") == 1
        assert _metric(t.metrics, "ibkr_submit_to_fill_ms_count") == 1


async def test_account_monitor_starts_and_reconnects_with_open_positions(
    tws: tuple[TwsSimulator, int], stack: Stack
) -> None:
    # Positions exist before the monitor starts (a restart of the ingest role mid-day); its
    # restorer runs at start, after a reconnect, and on a live session (1101) without
    # asking ib_insync twice for the same P&L subscription.
    sim, port = tws
    trader, _ = _connection(port, 131, "execution")
    conn, metrics = _connection(port, 132)
    redis = Redis.from_url(stack.redis_url)
    prefix = unique("acct") + ":"
    monitor = AccountMonitor(conn, TimeSeriesWriter(redis, Metrics(), prefix), metrics)
    await trader.start()
    await conn.start()
    try:
        await trader.wait_connected(10)
        for symbol in ("SPY", "QQQ"):
            (contract,) = await qualify(trader.ib, [underlying_contract(symbol)])
            trade = trader.ib.placeOrder(contract, MarketOrder("BUY", 3))
            await _until(lambda trade=trade: trade.orderStatus.status == "Filled", 10, f"{symbol} filled")
        await conn.wait_connected(10)
        await _until(lambda: len(conn.ib.positions()) >= 2, 10, "positions known to the monitor's session")
        await monitor.start()
        account = monitor.account or ""
        await _until(lambda: len(conn.ib.pnlSingle(account)) == 2, 10, "one P&L subscription per position")
        await monitor._restore(conn.ib)  # a restore on the live session (TWS said 1101)
        assert len(conn.ib.pnlSingle(account)) == 2 and len(conn.ib.pnl(account)) == 1
        assert sim.drop_connections() >= 2
        await _until(lambda: _metric(metrics, "ibkr_reconnects_total", role="ingest-ibkr") == 1, 10, "reconnect")
        await _until(lambda: len(conn.ib.pnlSingle(account)) == 2, 10, "P&L subscriptions back after the reconnect")
        assert _metric(metrics, "ibkr_error_events_total", code="resubscribe") == 0
        handlers = len(conn.ib.accountValueEvent), len(conn.ib.positionEvent)
        await monitor.start()  # a start-up phase run again after the reconnect: nothing added twice
        assert (len(conn.ib.accountValueEvent), len(conn.ib.positionEvent)) == handlers
        assert len(conn.ib.pnlSingle(account)) == 2 and len(conn.ib.pnl(account)) == 1
        for _ in range(50):
            if len(await redis.hgetall(f"{prefix}positions:{account}")) == 2:
                break
            await asyncio.sleep(0.1)
        assert len(await redis.hgetall(f"{prefix}positions:{account}")) == 2
    finally:
        await monitor.stop()
        await conn.stop()
        await trader.stop()
        await redis.aclose()


async def test_a_request_in_flight_fails_when_the_heartbeat_gives_the_socket_up(tws: tuple[TwsSimulator, int]) -> None:
    # TWS stops answering; the heartbeat declares the socket dead and closes it. A request
    # waiting on that socket must fail then (as on a peer close), not wait forever.
    sim, port = tws
    conn, metrics = _connection(port, 141, "execution")
    await conn.start()
    await conn.wait_connected(10)
    try:
        sim.stall(12.0)
        request = asyncio.ensure_future(conn.ib.qualifyContractsAsync(underlying_contract("MSFT")))
        started = time.monotonic()
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(request, 11.0)
        assert time.monotonic() - started < 11.0  # failed with the socket, before the stall ended
        assert _metric(metrics, "ibkr_disconnects_total", role="execution") == 1
        await conn.wait_connected(20)  # and the session comes back once TWS answers again
    finally:
        await conn.stop()


async def test_fills_and_cancels_while_disconnected_reach_the_ledger(
    tws: tuple[TwsSimulator, int], stack: Stack
) -> None:
    # Two resting orders; TWS restarts, and while no client is connected one fills and the
    # other is cancelled. ib_insync replays both on reconnect without events: the gateway's
    # order sync brings them into the ledger, once.
    sim, port = tws
    async with _trading(port, 202, stack) as t:
        ticker = await t.spy_quote()
        resting = Decimal(str(round(ticker.bid * 0.9, 2)))
        to_cancel, to_fill = (
            OrderRequest(signal_id=f"sig-{unique()}", symbol="SPY", side="buy", quantity=q, limit_price=resting)
            for q in (2, 4)
        )
        acks = [await t.router.submit(r) for r in (to_cancel, to_fill)]
        assert all(a.status == "submitted" for a in acks)
        tokens = {to_cancel.token, to_fill.token}
        await _until(lambda: tokens <= {o.order_ref for o in sim.state.orders if o.status == "Submitted"}, 5, "working")
        by_ref = {o.order_ref: o for o in sim.state.orders}
        filling = by_ref[to_fill.token]

        def cancel_one_fill_the_other() -> None:
            now = sim.state.now()
            events = sim.state.orders.cancel(by_ref[to_cancel.token], now)
            filling.limit = Decimal(str(round(ticker.ask * 1.5, 2)))  # the market came through the limit
            con_id = filling.contract.con_id
            sim.state.route(events + sim.state.orders.on_quote(con_id, sim.state.latest[con_id], now))

        await _while_tws_restarts(sim, t.conn, cancel_one_fill_the_other)
        assert filling.status == "Filled"

        async def statuses() -> list[str | None]:
            return [(await t.ledger.load(a.order_id)).get("status") for a in acks]

        for _ in range(100):
            if await statuses() == ["cancelled", "filled"]:
                break
            await asyncio.sleep(0.1)
        assert await statuses() == ["cancelled", "filled"]
        assert (await t.ledger.load(acks[1].order_id))["filled"] == "4"
        fills = [r for r in t.published if isinstance(r, Fill)]
        assert [f.quantity for f in fills] == [4] and fills[0].order_id == acks[1].order_id
        await t.gateway.sync(t.conn.ib)  # syncing again (the next reconnect) counts nothing twice
        assert len([r for r in t.published if isinstance(r, Fill)]) == 1
        assert (await t.ledger.load(acks[1].order_id))["filled"] == "4"


@pytest.fixture
async def tws_in_session() -> AsyncIterator[tuple[TwsSimulator, int]]:
    """A simulator whose clock runs inside a regular session, so its stocks print trades at any hour."""
    clock = RunningClock()
    market = SimulatedMarket(7, clock.start - timedelta(days=1), ["SPY", "AAPL"])
    sim = TwsSimulator(market, TwsSimConfig(tick_interval_s=0.1), clock)
    port = await sim.start("127.0.0.1", 0)
    yield sim, port
    await sim.stop()


async def test_symbols_without_realtime_bars_get_bars_built_from_their_trades(
    tws_in_session: tuple[TwsSimulator, int],
) -> None:
    # AAPL streams tick-by-tick without reqRealTimeBars: its 5 s bars come from its trades,
    # and each equals the bar the same trades make (no trade lost or counted twice). Trades
    # print only in a session (04:00-20:00 ET), hence the simulator's in-session clock.
    _, port = tws_in_session
    conn, metrics, feed, records, contracts = await _streaming(port, 113, ("AAPL", "SPY"))
    try:
        await feed.subscribe_tick_by_tick(contracts)
        await feed.subscribe_bars([c for c in contracts if c.symbol == "SPY"])  # SPY keeps TWS's bars
        bars = lambda: [r for r in records if isinstance(r, Bar) and r.symbol == "AAPL"]  # noqa: E731
        await _until(lambda: len(bars()) >= 2, 20, "two trade-built AAPL bars")
        end = max(r.event_time for r in records) + timedelta(seconds=30)  # the simulator's time
        feed.close_trade_bars(end)
        trades = [r for r in records if isinstance(r, Tick) and r.kind == "trade" and r.symbol == "AAPL"]
        expected = TradeBarAggregator(5)
        built = [b for t in trades for b in expected.add("AAPL", t.event_time, t.price or 0.0, t.size or 0.0)]
        built += expected.close_due(end)
        got = [(b.event_time, b.open, b.high, b.low, b.close, b.volume) for b in bars()]
        assert got == [(b.start, b.open, b.high, b.low, b.close, b.volume) for b in built]
        assert all(b.interval_s == 5 and b.event_time.timestamp() % 5 == 0 for b in bars())
        assert any(isinstance(r, Tick) and r.kind == "trade" and r.symbol == "SPY" for r in records)
        assert feed.trade_bar_symbols == {"AAPL"}  # SPY's trades arrived, but its bars are TWS's only
    finally:
        await conn.stop()


async def test_an_order_lost_with_the_connection_is_closed_by_the_sync(
    tws: tuple[TwsSimulator, int], stack: Stack
) -> None:
    # An order goes out as the connection breaks and TWS never gets it (here: TWS restarts and
    # its book no longer has the order). After the reconnect the sync closes it as lost
    # (rejected, with the reason) instead of leaving it "submitted" forever; the order TWS
    # still has stays open.
    sim, port = tws
    async with _trading(port, 203, stack) as t:
        ticker = await t.spy_quote()
        resting = Decimal(str(round(ticker.bid * 0.9, 2)))
        kept, lost = (
            OrderRequest(signal_id=f"sig-{unique()}", symbol="SPY", side="buy", quantity=1, limit_price=resting)
            for _ in range(2)
        )
        kept_ack, lost_ack = [await t.router.submit(r) for r in (kept, lost)]
        assert lost_ack.status == "submitted" and lost_ack.broker_order_id
        tokens = {kept.token, lost.token}
        await _until(lambda: tokens <= {o.order_ref for o in sim.state.orders}, 5, "both orders at TWS")
        book = sim.state.orders.orders
        await _while_tws_restarts(
            sim, t.conn, lambda: book.pop(next(k for k, o in book.items() if o.order_ref == lost.token))
        )
        await _until(lambda: _metric(t.metrics, "ibkr_reconnects_total", role="execution") == 1, 15, "reconnect")
        for _ in range(100):
            if (await t.ledger.load(lost_ack.order_id)).get("status") != "submitted":
                break
            await asyncio.sleep(0.1)
        order = await t.ledger.load(lost_ack.order_id)
        assert order["status"] == "rejected" and order["reason"].startswith("lost:"), order
        assert not any(o.order_ref == lost.token for o in sim.state.orders)
        assert (await t.ledger.load(kept_ack.order_id))["status"] == "submitted"
        assert await t.ledger.open_orders() == [kept_ack.order_id]
        assert _metric(t.metrics, "ibkr_error_events_total", code="order_unknown_to_tws") == 1


async def test_subscribing_again_after_a_reconnect_requests_nothing_twice(tws: tuple[TwsSimulator, int]) -> None:
    # The role's start-up subscribing is cut short by a lost connection (a missed heartbeat
    # under start-up load did it in `make run`); the reconnect restores what was registered,
    # and the role then runs its subscribing again: the lines restored are not requested a
    # second time, the missing one is added, and the depth rotation starts once.
    sim, port = tws
    conn, metrics = _connection(port, 117)
    feed = MarketDataFeed(conn, lambda record: None, RecordStamp("run-t", "sim"), metrics)
    settings = DepthSettings(venues=["SPY@ARCA", "QQQ@ISLAND"], dwell_s=0.3, snapshot_interval_s=0.2)
    rotator = DepthRotator(conn, settings, lambda record: None, RecordStamp("run-t", "sim"), metrics)
    await conn.start()
    await conn.wait_connected(10)
    try:
        spy, qqq, iwm = await qualify(conn.ib, [underlying_contract(s) for s in ("SPY", "QQQ", "IWM")])
        await feed.subscribe_l1([spy, qqq], "underlying")
        await rotator.start()
        assert sim.drop_connections() >= 1
        await _until(lambda: _metric(metrics, "ibkr_reconnects_total", role="ingest-ibkr") == 1, 10, "reconnect")
        await _until(lambda: sim.subscription_counts()["mkt_data"] == 2, 5, "the two lines restored")

        await feed.subscribe_l1([spy, qqq, iwm], "underlying")  # the interrupted phase, run again
        await rotator.start()

        await asyncio.sleep(1.5)  # five dwell times: two venues in three slots never need to rotate
        lines = [
            sub.contract.con_id
            for session in sim.feed.sessions()
            for sub in session.quote_subs.values()
            if sub.kind == "mkt_data"
        ]
        assert sorted(lines) == sorted([spy.conId, qqq.conId, iwm.conId])
        assert sim.subscription_counts()["depth"] == 2  # both venues, none twice
        assert _metric(metrics, "ibkr_depth_rotations_total") == 0  # one rotation queue, no venue queued twice
    finally:
        await rotator.stop()
        await conn.stop()


async def test_a_market_data_request_tws_dropped_is_asked_again_once_the_line_stays_silent(
    tws: tuple[TwsSimulator, int],
) -> None:
    """TWS drops a reqMktData over its rate without saying which: the silent line is requested again."""
    sim, port = tws
    conn, metrics, feed, records, contracts = await _streaming(port, 131, ("SPY", "QQQ"))
    try:
        sim.state.faults.drop_next(REQ_MKT_DATA)  # SPY's request is lost

        def quoted() -> set[str]:
            return {r.symbol for r in records if isinstance(r, UnderlyingQuote)}

        await feed.subscribe_l1(contracts, "underlying")
        await _until(lambda: "QQQ" in quoted(), 10, "QQQ quotes")
        await asyncio.sleep(0.5)
        assert "SPY" not in quoted()  # its line is silent
        assert await feed.ask_silent_lines_again(after_s=60.0) == 0  # not silent for long enough yet
        with structlog.testing.capture_logs() as logs:
            assert await feed.ask_silent_lines_again(after_s=0.2) == 1  # SPY only: QQQ has answered
        await _until(lambda: "SPY" in quoted(), 10, "SPY quotes after asking again")
        assert [(e["symbol"], e["attempt"]) for e in logs if e["event"] == "ibkr_line_silent_asked_again"] == [
            ("SPY", 1)
        ]
        assert _metric(metrics, "ibkr_error_events_total", code="silent_line") == 1
        assert await feed.ask_silent_lines_again(after_s=0.0) == 0  # every line has answered now
    finally:
        await conn.stop()
