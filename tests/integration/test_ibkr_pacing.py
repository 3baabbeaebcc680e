"""IBKR request pacing (quanticity.ibkr.pacing) on the real Redis Stack and the TWS simulator.

Two processes' pacers on one TWS share a budget: together they never send more than
TWS's 50 messages in any second. A whole option chain qualified through the pacer
answers completely with no error 100. Without Redis each process paces itself.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import ib_insync
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from quanticity.ibkr.contracts import qualify
from quanticity.ibkr.metrics import IbkrMetrics
from quanticity.ibkr.pacing import MARKET_DATA, ORDERS, Pacer
from quanticity.ibkr.settings import Pacing
from quanticity.simulation.market import SimulatedMarket
from quanticity.simulation.tws import TwsSimConfig, TwsSimulator
from tests.conftest import Stack, free_port, unique

pytestmark = pytest.mark.integration

TWS_LIMIT = 50


def busiest_second(times: list[float]) -> int:
    times = sorted(times)
    return max((bisect.bisect_right(times, t + 1.0) - i for i, t in enumerate(times)), default=0)


@pytest.fixture
async def redis_pair(stack: Stack) -> AsyncIterator[tuple[Redis, Redis]]:
    """Two clients with their own pools, as two processes would have."""
    a, b = Redis.from_url(stack.redis_url), Redis.from_url(stack.redis_url)
    yield a, b
    await a.aclose()
    await b.aclose()


async def test_two_processes_together_stay_under_the_tws_message_limit(redis_pair: tuple[Redis, Redis]) -> None:
    prefix = unique("pace") + ":"
    pacing = Pacing()
    ingest = Pacer(redis_pair[0], IbkrMetrics(CollectorRegistry()), pacing, MARKET_DATA, prefix)
    execution_md = Pacer(redis_pair[1], IbkrMetrics(CollectorRegistry()), pacing, MARKET_DATA, prefix)
    execution_orders = Pacer(redis_pair[1], IbkrMetrics(CollectorRegistry()), pacing, ORDERS, prefix)
    sent: list[float] = []
    orders: list[float] = []

    async def send(pacer: Pacer, n: int, into: list[float]) -> None:
        for _ in range(n):
            await pacer(1)
            into.append(time.monotonic())

    started = time.monotonic()
    await asyncio.gather(send(ingest, 60, sent), send(execution_md, 40, sent), send(execution_orders, 12, orders))
    elapsed = time.monotonic() - started
    everything = sent + orders
    assert busiest_second(everything) < TWS_LIMIT, f"{busiest_second(everything)} messages in one second"
    assert busiest_second(orders) <= pacing.orders_per_s * 2  # rate + burst
    # 112 requests at 40/s with a burst of 8: the limit binds, so it takes at least ~2.6 s.
    assert elapsed >= (len(everything) - 8) / pacing.market_data_per_s * 0.95


async def test_a_chain_qualified_through_the_pacer_answers_completely_without_error_100(stack: Stack) -> None:
    market = SimulatedMarket(11, datetime.now(UTC), ["SPY"])
    sim = TwsSimulator(market, TwsSimConfig(tick_interval_s=0.5))
    await sim.start()
    redis = Redis.from_url(stack.redis_url)
    ib = ib_insync.IB()
    codes: list[int] = []
    ib.errorEvent += lambda req_id, code, text, contract: codes.append(code)
    try:
        await ib.connectAsync("127.0.0.1", sim.port, clientId=5, timeout=10)
        ib.client.MaxRequests = 0  # ib_insync's own 45/s throttle off: the pacer alone must hold the line
        pace = Pacer(redis, IbkrMetrics(CollectorRegistry()), Pacing(), MARKET_DATA, unique("pace") + ":")
        (spy,) = await qualify(ib, [ib_insync.Stock("SPY", "SMART", "USD")], pace)
        (chain,) = [c for c in await ib.reqSecDefOptParamsAsync("SPY", "", "STK", spy.conId) if c.exchange == "SMART"]
        expiry = sorted(chain.expirations)[1]
        # The chain's strikes are the union over every expiry (as TWS sends them); a near expiry
        # lists fewer, so take the 60 nearest 600 from that expiry's own contracts.
        listed = await ib.reqContractDetailsAsync(ib_insync.Option("SPY", expiry, right="C", exchange="SMART"))
        assert set(d.contract.strike for d in listed) <= set(chain.strikes)
        strikes = sorted((d.contract.strike for d in listed), key=lambda k: abs(k - 600))[:60]
        options = [ib_insync.Option("SPY", expiry, k, r, "SMART") for k in strikes for r in "CP"]
        done = await asyncio.wait_for(qualify(ib, options, pace), 30)
        assert len(done) == 120 and all(o.conId for o in options)
        assert 100 not in codes
    finally:
        ib.disconnect()
        await redis.aclose()
        await sim.stop()


async def test_without_redis_each_process_paces_itself_and_says_so() -> None:
    metrics = IbkrMetrics(CollectorRegistry())
    dead = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    pacer = Pacer(dead, metrics, Pacing(market_data_per_s=20), MARKET_DATA)
    started = time.monotonic()
    try:
        await pacer(11)
    finally:
        await dead.aclose()
    assert time.monotonic() - started >= 10 / 20 * 0.95  # 11 requests at 20/s: 10 intervals
    assert metrics.error_events.labels("pacing_fallback")._value.get() == 11
