"""Live IBKR suite: `LIVE_IBKR_TESTS=1 pytest -m live_ibkr` against a paper TWS / IB Gateway.

Through the production classes (``IbkrConnection``, the shared Redis ``Pacer``, ``qualify``,
``MarketDataFeed``, ``DepthRotator``, ``OrderRouter`` + ``IbkrOrderGateway``): a limited SPY
option chain (secdef, ATM ± 2 strikes, L1 with model greeks), one depth book on an explicit
exchange, and a 1-share SPY limit buy far below the market that is placed and cancelled.
Deselected by default (pyproject addopts) and skipped without ``LIVE_IBKR_TESTS=1``.

Environment: ``LIVE_IBKR_HOST`` (127.0.0.1), ``LIVE_IBKR_PORT`` (7497, paper TWS),
``LIVE_IBKR_CLIENT_ID`` (first of three consecutive ids, 931), ``LIVE_IBKR_DEPTH_VENUE``
(SPY@ARCA), ``LIVE_IBKR_MARKET_DATA_TYPE`` (1 live; an entitlement error downgrades a line
to delayed). The order test refuses accounts that are not paper accounts (``D…``).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from quanticity.execution.ibkr_gateway import IbkrOrderGateway
from quanticity.execution.order_router import OrderAck, OrderRequest, OrderRouter
from quanticity.ibkr.connection_manager import Endpoint, IbkrConnection
from quanticity.ibkr.contracts import (
    chain_params,
    option_contracts,
    pick_chain,
    qualify,
    round_to_tick,
    select_strikes,
    underlying_contract,
)
from quanticity.ibkr.market_data import MarketDataFeed, RecordStamp
from quanticity.ibkr.market_depth import DepthRotator
from quanticity.ibkr.metrics import IbkrMetrics
from quanticity.ibkr.pacing import MARKET_DATA, ORDERS, Pacer
from quanticity.ibkr.settings import DepthSettings, DepthVenue, IbkrSettings
from quanticity.schemas import DepthSnapshot, OptionQuoteBatch, OrderEvent, Record, UnderlyingQuote
from quanticity.storage.ibkr_events import OrderLedger
from tests.conftest import LIVE_IBKR_DEPTH_BOOKS, LIVE_IBKR_PACING_WAIT_S, Stack, unique

pytestmark = pytest.mark.live_ibkr

NEW_YORK = ZoneInfo("America/New_York")
LIVE_PORTS = frozenset({7496, 4001})  # live TWS / live IB Gateway: never place orders there
SETTINGS = IbkrSettings(connect_timeout_s=15.0, heartbeat_interval_s=5.0, heartbeat_timeout_s=5.0)
RecordProperty = Callable[[str, object], None]


@dataclass(frozen=True)
class LiveTws:
    """Where the paper TWS listens, from the environment."""

    host: str
    port: int
    client_id: int
    depth_venue: DepthVenue
    market_data_type: int


@pytest.fixture(scope="module")
def live_tws() -> LiveTws:
    if os.environ.get("LIVE_IBKR_TESTS") != "1":
        pytest.skip(
            "live IBKR suite: set LIVE_IBKR_TESTS=1 with a paper TWS / IB Gateway listening on "
            "LIVE_IBKR_HOST:LIVE_IBKR_PORT (default 127.0.0.1:7497) with the API enabled"
        )
    try:
        return LiveTws(
            os.environ.get("LIVE_IBKR_HOST", "127.0.0.1"),
            int(os.environ.get("LIVE_IBKR_PORT", "7497")),
            int(os.environ.get("LIVE_IBKR_CLIENT_ID", "931")),
            DepthVenue.parse(os.environ.get("LIVE_IBKR_DEPTH_VENUE", "SPY@ARCA")),
            int(os.environ.get("LIVE_IBKR_MARKET_DATA_TYPE", "1")),
        )
    except ValueError as exc:
        pytest.fail(f"live IBKR suite: bad LIVE_IBKR_* setting: {exc}")


@dataclass
class Session:
    """One test's supervised connection with the shared pacing budget on the session's Redis."""

    conn: IbkrConnection
    registry: CollectorRegistry
    metrics: IbkrMetrics
    redis: Redis
    prefix: str

    def pacing_wait_s(self) -> float:
        """Seconds every request of this session waited for the pacing budget."""
        return sum(
            sample.value
            for metric in self.registry.collect()
            if metric.name == "ibkr_pacing_wait_seconds"
            for sample in metric.samples
            if sample.name.endswith("_sum")
        )


async def _open(live: LiveTws, stack: Stack, offset: int, role: str) -> Session:
    registry = CollectorRegistry()
    metrics = IbkrMetrics(registry)
    redis = Redis.from_url(stack.redis_url)
    prefix = unique("live")
    conn = IbkrConnection(
        SETTINGS,
        Endpoint(live.host, live.port, live.client_id + offset, role),
        metrics,
        market_data_type=live.market_data_type,
        pace=Pacer(redis, metrics, SETTINGS.pacing, MARKET_DATA, prefix),
    )
    await conn.start()
    try:
        await conn.wait_connected(SETTINGS.connect_timeout_s * 2)
    except BaseException:
        await conn.stop()
        await redis.aclose()
        raise
    return Session(conn, registry, metrics, redis, prefix)


@pytest.fixture
async def chain_session(live_tws: LiveTws, stack: Stack) -> AsyncIterator[Session]:
    session = await _open(live_tws, stack, 0, "live-chain")
    yield session
    await session.conn.stop()
    await session.redis.aclose()


@pytest.fixture
async def depth_session(live_tws: LiveTws, stack: Stack) -> AsyncIterator[Session]:
    session = await _open(live_tws, stack, 1, "live-depth")
    yield session
    await session.conn.stop()
    await session.redis.aclose()


@pytest.fixture
async def order_session(live_tws: LiveTws, stack: Stack) -> AsyncIterator[Session]:
    session = await _open(live_tws, stack, 2, "live-orders")
    yield session
    await session.conn.stop()
    await session.redis.aclose()


async def _wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:.0f} s")
        await asyncio.sleep(0.1)


async def _spot(feed_records: list[Record], timeout_s: float = 20.0) -> float:
    """The SPY price from the feed's first usable underlying quote (mid, else last)."""

    def price() -> float | None:
        for record in reversed(feed_records):
            if isinstance(record, UnderlyingQuote) and record.symbol == "SPY":
                if record.bid and record.ask:
                    return (record.bid + record.ask) / 2
                if record.last:
                    return record.last
        return None

    await _wait_for(lambda: price() is not None, timeout_s, "a SPY quote")
    value = price()
    assert value is not None
    return value


async def test_live_limited_chain_streams_l1_with_greeks(
    chain_session: Session, record_property: RecordProperty
) -> None:
    conn = chain_session.conn
    records: list[Record] = []
    feed = MarketDataFeed(conn, records.append, RecordStamp("live-test", "paper"), chain_session.metrics)
    try:
        spy = (await qualify(conn.ib, [underlying_contract("SPY")], conn.pace))[0]
        assert spy.conId and spy.secType == "STK"
        await feed.subscribe_l1([spy], "underlying")
        await conn.pace(1)
        raw = await conn.ib.reqSecDefOptParamsAsync(spy.symbol, "", spy.secType, spy.conId)
        today = datetime.now(NEW_YORK).date()
        params = pick_chain(chain_params(raw), today)
        expiry = next(e for e in params.expirations if e >= today)
        strikes = select_strikes(params.strikes, await _spot(records), 2)
        options = await qualify(conn.ib, option_contracts("SPY", params, expiry, strikes), conn.pace)
        assert len(options) == 2 * len(strikes) == 10 and all(o.conId for o in options)
        await feed.subscribe_l1(options, "option")

        def with_greeks() -> list[tuple[date, float, float, float | None]]:
            return [
                (b.expiry[i], b.strike[i], delta, b.implied_vol[i])
                for b in records
                if isinstance(b, OptionQuoteBatch)
                for i, delta in enumerate(b.delta)
                if delta is not None
            ]

        await _wait_for(lambda: len(with_greeks()) > 0, 45, "an option quote with model greeks")
        quote_expiry, strike, delta, iv = with_greeks()[-1]
        assert quote_expiry == expiry and strike in strikes
        assert -1.0 <= delta <= 1.0
        assert iv is None or iv > 0
    finally:
        record_property(LIVE_IBKR_PACING_WAIT_S, chain_session.pacing_wait_s())
        if conn.ib.isConnected():  # free the market data lines of a real account at once
            for ticker in conn.ib.tickers():
                if ticker.contract is not None:
                    conn.ib.cancelMktData(ticker.contract)


async def test_live_depth_snapshot_on_an_explicit_exchange(
    depth_session: Session, live_tws: LiveTws, record_property: RecordProperty
) -> None:
    venue = live_tws.depth_venue
    books: list[Record] = []
    settings = DepthSettings(venues=[str(venue)], slots=1, rows=5, dwell_s=120, snapshot_interval_s=0.5)
    rotator = DepthRotator(
        depth_session.conn, settings, books.append, RecordStamp("live-test", "paper"), depth_session.metrics
    )
    try:
        await rotator.start()
        assert not rotator.rejected, rotator.rejected
        await _wait_for(lambda: any(isinstance(b, DepthSnapshot) for b in books), 45, f"a depth book from {venue}")
        book = next(b for b in books if isinstance(b, DepthSnapshot))
        assert (book.symbol, book.venue) == (venue.symbol, venue.exchange)
        assert book.bids or book.asks
        if book.bids and book.asks:
            assert book.bids[0].price <= book.asks[0].price
        record_property(LIVE_IBKR_DEPTH_BOOKS, len(books))
    finally:
        record_property(LIVE_IBKR_PACING_WAIT_S, depth_session.pacing_wait_s())
        await rotator.stop()


async def test_live_micro_order_far_from_market_is_placed_and_cancelled(
    order_session: Session, live_tws: LiveTws, record_property: RecordProperty
) -> None:
    conn = order_session.conn
    accounts = conn.ib.managedAccounts()
    if live_tws.port in LIVE_PORTS or not accounts or not all(a.startswith("D") for a in accounts):
        pytest.skip(f"refusing to place an order: port {live_tws.port}, accounts {accounts} are not paper")
    records: list[Record] = []
    feed = MarketDataFeed(conn, records.append, RecordStamp("live-test", "paper"), order_session.metrics)
    ledger = OrderLedger(order_session.redis, order_session.prefix)

    published: list[Record] = []

    async def publish(record: Record) -> None:
        published.append(record)

    gateway = IbkrOrderGateway(
        conn, Pacer(order_session.redis, order_session.metrics, SETTINGS.pacing, ORDERS, order_session.prefix)
    )
    router = OrderRouter(gateway, ledger, publish, order_session.metrics, "live-test", "paper")
    gateway.attach(router)
    acks: list[OrderAck] = []
    router.register_ack_listener(acks.append)
    request: OrderRequest | None = None
    try:
        spy = (await qualify(conn.ib, [underlying_contract("SPY")], conn.pace))[0]
        await feed.subscribe_l1([spy], "underlying")
        spot = Decimal(str(await _spot(records)))
        limit = max(round_to_tick(spot * Decimal("0.5"), Decimal("0.01"), "buy"), Decimal("1.00"))
        request = OrderRequest(
            signal_id=f"live-{unique()}", symbol="SPY", side="buy", quantity=1, limit_price=limit, account=accounts[0]
        )
        ack = await router.submit(request)
        assert ack.status == "submitted" and ack.broker_order_id, ack
        trade = next(t for t in conn.ib.trades() if t.order.orderRef == request.token)
        await _wait_for(lambda: trade.orderStatus.status in ("PreSubmitted", "Submitted"), 20, "TWS accepted it")
        assert trade.orderStatus.filled == 0, "a limit at half the market filled"
        await router.cancel(ack.order_id)
        await _wait_for(lambda: any(a.status == "cancelled" for a in acks), 20, "the Cancelled ack")
        assert trade.orderStatus.status == "Cancelled"
        assert (await ledger.load(ack.order_id))["status"] == "cancelled"
        assert not [f for f in conn.ib.fills() if f.execution.orderRef == request.token]
        statuses = [r.status for r in published if isinstance(r, OrderEvent)]
        assert statuses[0] == "pending" and "submitted" in statuses and statuses[-1] == "cancelled", statuses
    finally:
        if request is not None:  # never leave the order working, whatever failed above
            for trade in conn.ib.openTrades():
                if trade.order.orderRef == request.token:
                    conn.ib.cancelOrder(trade.order)
        record_property(LIVE_IBKR_PACING_WAIT_S, order_session.pacing_wait_s())
        await router.close()
