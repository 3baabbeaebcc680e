"""Positions from the ledger's fills against the TWS simulator's, through the unmodified ib_insync client.

Orders go through the production router and gateway, the ledger and the snapshots live on the
real Redis Stack (private key prefix), and the Parquet files in the test's directory.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import orjson
import pytest
import structlog
from aiokafka import AIOKafkaProducer
from ib_insync import IB, MarketOrder, Stock
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from quanticity.agents.analytics_portfolio import RedisPositions
from quanticity.app.platform import Platform
from quanticity.execution.ibkr_gateway import IbkrOrderGateway
from quanticity.execution.order_router import OrderRequest, OrderRouter
from quanticity.execution.position_store import (
    ContractKey,
    IbPositions,
    PositionStore,
    RedisPositionsMirror,
)
from quanticity.ibkr.account import AccountMonitor
from quanticity.ibkr.connection_manager import Endpoint, IbkrConnection
from quanticity.ibkr.contracts import chain_params, pick_chain, qualify, select_strikes, underlying_contract
from quanticity.ibkr.metrics import IbkrMetrics
from quanticity.ibkr.settings import IbkrSettings
from quanticity.observability.metrics import Metrics
from quanticity.schemas import OrderEvent, Record
from quanticity.schemas.codec import encode_record
from quanticity.settings import Settings
from quanticity.simulation.market import SimulatedMarket
from quanticity.simulation.tws.config import TwsSimConfig
from quanticity.simulation.tws.server import TwsSimulator
from quanticity.storage.ibkr_events import OrderLedger
from quanticity.storage.redis_timeseries import TimeSeriesWriter
from tests.conftest import Stack, unique

pytestmark = pytest.mark.integration

FAST = IbkrSettings(
    heartbeat_interval_s=0.5,
    heartbeat_timeout_s=1.0,
    reconnect_backoff_s=[0.1, 0.25, 0.5, 1.0],
    connect_timeout_s=5.0,
)
SPY = ContractKey.of("SPY", "STK")
QQQ = ContractKey.of("QQQ", "STK")


async def _until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout_s} s")


@dataclass
class Desk:
    """The execution side of one test: session, router, ledger, position store."""

    sim: TwsSimulator
    port: int
    conn: IbkrConnection
    registry: CollectorRegistry
    metrics: IbkrMetrics
    redis: Redis
    ledger: OrderLedger
    router: OrderRouter
    store: PositionStore
    account: str
    directory: Path

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def new_store(self) -> PositionStore:
        """A second store on the same ledger and archive: the role after a restart."""
        return PositionStore(self.ledger, self.metrics, self.directory, settle_s=0.5, commission_wait_s=3.0)

    def broker_quantity(self, key: ContractKey) -> float:
        return sum(
            p.position for p in self.conn.ib.positions(self.account) if ContractKey.from_contract(p.contract) == key
        )

    async def trade(self, request: OrderRequest, key: ContractKey, expect: float) -> None:
        """Submit ``request``; wait until it is filled, the broker holds ``expect`` and every commission is in."""
        ack = await self.router.submit(request)
        assert ack.status == "submitted", ack

        async def filled() -> bool:
            order = await self.ledger.load(ack.order_id)
            return order.get("status") == "filled" and order.get("filled") == str(request.quantity)

        deadline = time.monotonic() + 15
        while not await filled():
            assert time.monotonic() < deadline, f"{request.signal_id} not filled"
            await asyncio.sleep(0.05)
        await _until(lambda: self.broker_quantity(key) == expect, 10, f"broker holds {expect} {key.text}")
        await _until(
            lambda: all(f.commissionReport.commission > 0 for f in self.conn.ib.fills()), 10, "commission reports"
        )


def _request(symbol: str, side: Literal["buy", "sell"], quantity: int) -> OrderRequest:
    return OrderRequest(signal_id=f"sig-{unique()}", symbol=symbol, side=side, quantity=quantity)


@pytest.fixture
async def desk(stack: Stack, tmp_path: Path) -> AsyncIterator[Desk]:
    market = SimulatedMarket(7, datetime.now(UTC), ["SPY", "QQQ", "IWM", "SPX"])
    sim = TwsSimulator(market, TwsSimConfig(tick_interval_s=0.1))
    port = await sim.start("127.0.0.1", 0)
    registry = CollectorRegistry()
    metrics = IbkrMetrics(registry)
    conn = IbkrConnection(FAST, Endpoint("127.0.0.1", port, 201, "execution"), metrics)
    redis = Redis.from_url(stack.redis_url)
    ledger = OrderLedger(redis, unique())
    published: list[Record] = []

    async def publish(record: Record) -> None:
        published.append(record)

    gateway = IbkrOrderGateway(conn)
    router = OrderRouter(gateway, ledger, publish, metrics, "run-t", "sim")
    gateway.attach(router)
    directory = tmp_path / "ledger"
    store = PositionStore(ledger, metrics, directory, settle_s=0.5, commission_wait_s=3.0)
    await conn.start()
    try:
        await conn.wait_connected(10)
        account = conn.ib.managedAccounts()[0]
        assert await store.load(account) == "ledger"  # nothing recorded yet
        yield Desk(sim, port, conn, registry, metrics, redis, ledger, router, store, account, directory)
    finally:
        await router.close()
        await conn.stop()
        await redis.aclose()
        await sim.stop()


async def test_orders_through_the_router_reconcile_to_zero_mismatches(desk: Desk) -> None:
    # The account monitor mirrors the broker's positions into Redis (a second broker view).
    # Started while the account is flat: its restorer requests reqPnLSingle twice for positions
    # that already exist, which ib_insync refuses (AssertionError).
    monitor = AccountMonitor(desk.conn, TimeSeriesWriter(desk.redis, Metrics(), desk.ledger.prefix), desk.metrics)
    await monitor.start()
    try:
        await _trade_and_reconcile(desk)
    finally:
        await monitor.stop()


async def _trade_and_reconcile(desk: Desk) -> None:
    ib = desk.conn.ib
    spy = (await qualify(ib, [underlying_contract("SPY")]))[0]
    await desk.trade(_request("SPY", "buy", 5), SPY, 5)
    await desk.trade(_request("SPY", "sell", 2), SPY, 3)
    await desk.trade(_request("QQQ", "buy", 3), QQQ, 3)
    await desk.trade(_request("QQQ", "sell", 4), QQQ, -1)  # through zero: short 1
    # One option, so the multiplier convention is checked against the broker's too.
    params = pick_chain(
        chain_params(await ib.reqSecDefOptParamsAsync("SPY", "", "STK", spy.conId)), datetime.now(UTC).date()
    )
    ticker = ib.reqMktData(spy, "", False, False)
    await _until(lambda: ticker.marketPrice() == ticker.marketPrice() and ticker.marketPrice() > 0, 10, "SPY price")
    strike = select_strikes(params.strikes, float(ticker.marketPrice()), 0)[0]
    expiry = next(e for e in params.expirations if e >= datetime.now(UTC).date())
    call = ContractKey.of("SPY", "OPT", expiry, strike, "C")
    option = OrderRequest(
        signal_id=f"sig-{unique()}",
        symbol="SPY",
        side="buy",
        quantity=2,
        sec_type="OPT",
        expiry=expiry,
        strike=Decimal(str(strike)),
        right="C",
    )
    await desk.trade(option, call, 2)

    result = await desk.store.reconcile(IbPositions(ib))
    assert result.ok, result.mismatches
    assert result.contracts == 3 and result.pending_fills == 0
    assert not result.cost_drifts, result.cost_drifts  # our average costs are the broker's
    positions = desk.store.positions()
    assert {k: p.quantity for k, p in positions.items()} == {SPY: 3, QQQ: -1, call: 2}
    # Realized P&L and average cost, commissions included, as the simulated account computes them.
    con_ids = {ContractKey.from_contract(p.contract): p.contract.conId for p in ib.positions(desk.account)}
    for key, ours in positions.items():
        theirs = desk.sim.account.positions[con_ids[key]]
        assert abs(ours.avg_cost - theirs.avg_cost) < Decimal("1e-9"), key
        assert abs(ours.realized_pnl - theirs.realized) < Decimal("1e-9"), key
        assert ours.commissions > 0
    assert positions[SPY].realized_pnl != 0 and positions[QQQ].realized_pnl != 0
    assert desk.metric("ibkr_position_mismatches") == 0
    assert desk.metric("ibkr_position_reconciliations_total", result="ok") == 1

    # The snapshot in Redis, with its time, and the day's Parquet file.
    snapshot = {
        k.decode(): orjson.loads(v)
        for k, v in (await desk.redis.hgetall(f"{desk.ledger.prefix}positions:snapshot:{desk.account}")).items()
    }
    assert abs(snapshot["_meta"]["taken_at"] - time.time()) < 30
    assert snapshot["SPY:STK"]["quantity"] == 3 and snapshot["QQQ:STK"]["quantity"] == -1
    assert snapshot["_reconcile"]["mismatches"] == []
    files = sorted(desk.directory.glob("positions-*.parquet"))
    assert [f.name for f in files] == [f"positions-{datetime.now(UTC):%Y%m%d}.parquet"]

    # The broker's view as the account monitor mirrors it into Redis agrees too.
    mirror = RedisPositionsMirror(desk.redis, desk.ledger.prefix)
    deadline = time.monotonic() + 10
    while len(await mirror.positions(desk.account)) < 3:
        assert time.monotonic() < deadline, "the account monitor did not mirror the positions"
        await asyncio.sleep(0.1)
    assert (await desk.store.reconcile(mirror)).ok
    # The analytics book reads every positions:* hash as the broker mirror: the snapshot adds nothing.
    book = await RedisPositions(lambda: desk.redis, desk.ledger.prefix).positions()
    assert sorted((p.symbol, p.quantity) for p in book) == [("QQQ", -1.0), ("SPY", 2.0), ("SPY", 3.0)]


async def test_a_fill_placed_by_another_client_is_reported(desk: Desk) -> None:
    await desk.trade(_request("SPY", "buy", 2), SPY, 2)
    assert (await desk.store.reconcile(IbPositions(desk.conn.ib))).ok

    # Someone else trades the account (another API client, or by hand in TWS).
    other = IB()
    await other.connectAsync("127.0.0.1", desk.port, clientId=777, timeout=5)
    try:
        trade = other.placeOrder(Stock("SPY", "SMART", "USD"), MarketOrder("BUY", 4))
        await _until(lambda: trade.orderStatus.status == "Filled", 10, "the other client's order filled")
    finally:
        other.disconnect()
    await _until(lambda: desk.broker_quantity(SPY) == 6, 10, "the broker holds 6 SPY")

    with structlog.testing.capture_logs() as logs:
        result = await desk.store.reconcile(IbPositions(desk.conn.ib))
    assert [(d.contract, d.ledger_quantity, d.broker_quantity) for d in result.mismatches] == [("SPY:STK", 2, 6)]
    warnings = [e for e in logs if e["event"] == "position_mismatch"]
    assert len(warnings) == 1 and warnings[0]["log_level"] == "warning"
    assert warnings[0]["contract"] == "SPY:STK" and warnings[0]["account"] == desk.account
    assert warnings[0]["ledger_quantity"] == 2 and Decimal(warnings[0]["broker_quantity"]) == 6
    assert desk.metric("ibkr_position_mismatches") == 1
    assert desk.metric("ibkr_position_reconciliations_total", result="mismatch") == 1
    stored = orjson.loads(await desk.redis.hget(f"{desk.ledger.prefix}positions:snapshot:{desk.account}", "_reconcile"))
    assert [(m["contract"], m["ledger_quantity"], Decimal(m["broker_quantity"])) for m in stored["mismatches"]] == [
        ("SPY:STK", 2, 6)
    ]


async def test_restart_rebuilds_from_snapshot_archive_or_ledger_and_a_lost_fill_shows(desk: Desk) -> None:
    await desk.trade(_request("SPY", "buy", 3), SPY, 3)
    await desk.trade(_request("SPY", "sell", 1), SPY, 2)
    await desk.trade(_request("QQQ", "buy", 2), QQQ, 2)
    assert (await desk.store.reconcile(IbPositions(desk.conn.ib))).ok
    before = desk.store.positions()
    prefix = desk.ledger.prefix
    snapshot_key = f"{prefix}positions:snapshot:{desk.account}"

    restarted = desk.new_store()
    assert await restarted.load(desk.account) == "redis"
    assert restarted.positions() == before

    await desk.redis.delete(snapshot_key)
    restarted = desk.new_store()
    assert await restarted.load(desk.account) == "parquet"
    assert restarted.positions() == before

    for path in desk.directory.glob("positions-*.parquet"):
        path.unlink()
    restarted = desk.new_store()
    assert await restarted.load(desk.account) == "ledger"
    assert restarted.positions() == before  # commissions included: they are kept by exec id

    # A fill lost from the ledger: the rebuilt book holds 3 SPY, the broker 2.
    day = f"{datetime.now(UTC):%Y%m%d}"
    entries = await desk.redis.xrange(f"{prefix}fills:{day}")
    sale = next(entry_id for entry_id, fields in entries if fields[b"quantity"] == b"1")
    await desk.redis.xdel(f"{prefix}fills:{day}", sale)
    await desk.redis.delete(snapshot_key)
    for path in desk.directory.glob("positions-*.parquet"):
        path.unlink()
    restarted = desk.new_store()
    assert await restarted.load(desk.account) == "ledger"
    result = await restarted.reconcile(IbPositions(desk.conn.ib))
    assert [(d.contract, d.ledger_quantity, d.broker_quantity) for d in result.mismatches] == [("SPY:STK", 3, 2)]


async def test_the_execution_role_reconciles_after_connect_and_after_a_reconnect(
    stack: Stack, make_settings: Callable[..., Settings], platform_factory: Callable[..., Platform]
) -> None:
    """The role's own loop: a reconciliation at connect, one right after a reconnect (the interval is long)."""
    sim = TwsSimulator(SimulatedMarket(7, datetime.now(UTC), ["SPY", "QQQ"]), TwsSimConfig(tick_interval_s=0.1))
    port = await sim.start("127.0.0.1", 0)
    settings = make_settings(
        ibkr={"simulator": {"enabled": False}, "port": port, "reconcile_interval_s": 600, "heartbeat_interval_s": 1.0}
    )
    platform = platform_factory(settings, ["execution"])
    prefix = settings.redis.key_prefix
    redis = Redis.from_url(stack.redis_url)
    snapshot_key = f"{prefix}positions:snapshot:{sim.config.account}"

    async def snapshot() -> dict[str, Any]:
        return {k.decode(): orjson.loads(v) for k, v in (await redis.hgetall(snapshot_key)).items()}

    async def snapshot_after(taken_at: float, timeout_s: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            doc = await snapshot()
            if doc and float(doc["_meta"]["taken_at"]) > taken_at:
                return doc
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.2)

    try:
        await platform.start()
        first = await snapshot_after(0.0, 60, "no reconciliation after the first connect")
        assert first["_reconcile"]["mismatches"] == []

        request = OrderRequest(signal_id=f"sig-{unique()}", symbol="SPY", side="buy", quantity=2)
        intent = OrderEvent(
            symbol="SPY",
            order_id=request.token,
            signal_id=request.signal_id,
            side="buy",
            quantity=2,
            status="pending",
            record_id=request.signal_id,
            event_time=datetime.now(UTC),
            source="platform",
            run_id="test",
            mode="sim",
        )
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
        await producer.start()
        try:
            assert platform.ctx is not None
            await producer.send_and_wait(platform.ctx.registry.broker_name("orders"), encode_record(intent), key=b"SPY")
        finally:
            await producer.stop()
        ledger = OrderLedger(redis, prefix)
        deadline = time.monotonic() + 30
        while (await ledger.load(request.token)).get("status") != "filled":
            assert time.monotonic() < deadline, "the intent was not filled"
            await asyncio.sleep(0.2)

        assert sim.drop_connections() >= 1
        after = await snapshot_after(
            float(first["_meta"]["taken_at"]),
            20,
            "no reconciliation right after the reconnect",
        )
        assert after["SPY:STK"]["quantity"] == 2
        assert after["_reconcile"]["mismatches"] == [] and after["_reconcile"]["contracts"] == 1
    finally:
        await platform.stop()
        await redis.aclose()
        await sim.stop()
