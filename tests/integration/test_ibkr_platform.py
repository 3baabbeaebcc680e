"""`quanticity up` in sim mode with the IBKR roles: the platform starts the TWS simulator, the
ingest role streams L1/options/depth into ibkr:* keys, and an order intent on `orders` is
filled once through the execution role, however often it is published."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from quanticity.app.platform import Platform
from quanticity.execution.order_router import OrderRequest
from quanticity.schemas import OrderEvent
from quanticity.schemas.codec import encode_record
from quanticity.settings import Settings
from quanticity.storage.ibkr_events import OrderLedger
from tests.conftest import Stack

pytestmark = pytest.mark.integration


async def _keys(redis: Redis, pattern: str) -> list[str]:
    return [k.decode() async for k in redis.scan_iter(match=pattern, count=1000)]


async def test_sim_mode_streams_ibkr_data_and_fills_an_order_once(
    stack: Stack, make_settings: Callable[..., Settings], platform_factory: Callable[..., Platform]
) -> None:
    settings = make_settings(
        ibkr={
            "simulator": {"tick_interval_ms": 100},
            "depth": {"dwell_s": 1.5, "snapshot_interval_s": 0.25},
            "heartbeat_interval_s": 1.0,
        }
    )
    platform = platform_factory(settings, ["store", "ingest-ibkr", "execution"])
    await platform.start()
    assert platform.tws_simulator is not None and platform.ctx is not None
    prefix = settings.redis.key_prefix
    redis = Redis.from_url(stack.redis_url)
    try:
        deadline = time.monotonic() + 90
        underlyings: set[str] = set()
        options: list[str] = []
        depth: set[str] = set()
        while time.monotonic() < deadline:
            underlyings = {k.split(":")[2] for k in await _keys(redis, f"{prefix}ibkr:underlying:*")}
            options = await _keys(redis, f"{prefix}ibkr:option:*:mid")
            depth = {k.split(":")[2] for k in await _keys(redis, f"{prefix}ibkr:depth:*")}
            if underlyings >= {"SPY", "QQQ", "IWM", "SPX"} and len(options) >= 20 and len(depth) > 3:
                break
            await asyncio.sleep(1)
        assert underlyings >= {"SPY", "QQQ", "IWM", "SPX"}
        assert len(options) >= 20, options
        assert len(depth) > 3, f"depth rotated through {sorted(depth)} only"
        assert await redis.xlen(f"{prefix}ibkr:ticks:SPY") > 0
        last = await redis.execute_command("TS.GET", f"{prefix}ibkr:underlying:SPY:mid")
        assert abs(time.time() * 1000 - int(last[0])) < 30_000, "SPY quotes are not fresh"

        # An order intent, published twice: one order, filled, with its fill recorded once.
        request = OrderRequest(signal_id="sig-platform-1", symbol="SPY", side="buy", quantity=2)
        ask = float((await redis.execute_command("TS.GET", f"{prefix}ibkr:underlying:SPY:ask"))[1])
        intent = OrderEvent(
            symbol="SPY",
            order_id=request.token,
            signal_id=request.signal_id,
            side="buy",
            quantity=2,
            limit_price=Decimal(str(round(ask * 1.01, 2))),
            status="pending",
            record_id=request.signal_id,
            event_time=datetime.now(UTC),
            source="platform",
            run_id="test",
            mode="sim",
        )
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, max_batch_size=1)
        await producer.start()
        try:
            topic = platform.ctx.registry.broker_name("orders")
            for _ in range(2):
                await producer.send_and_wait(topic, encode_record(intent), key=b"SPY")
        finally:
            await producer.stop()
        ledger = OrderLedger(redis, prefix)
        order: dict[str, str] = {}
        for _ in range(100):
            order = await ledger.load(request.token)
            if order.get("status") == "filled":
                break
            await asyncio.sleep(0.2)
        assert order.get("status") == "filled", order
        assert order["filled"] == "2"
        await asyncio.sleep(1.0)  # the second intent has been handled by now
        fills = await ledger.fills_of(request.token, datetime.now(UTC).date())
        assert sum(int(f["quantity"]) for f in fills) == 2
        sim_orders = [o for o in await _sim_orders(platform) if o == request.token]
        assert len(sim_orders) <= 1
    finally:
        await redis.aclose()


async def _sim_orders(platform: Platform) -> list[str]:
    # The simulator runs in its own process; the ledger's index of the day is what we placed.
    assert platform.ctx is not None
    redis = platform.ctx.redis()
    day = datetime.now(UTC).strftime("%Y%m%d")
    prefix = platform.settings.redis.key_prefix
    return [m.decode() for m in await redis.smembers(f"{prefix}orders:index:{day}")]
