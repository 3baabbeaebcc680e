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
from functools import partial

import ib_insync
import pytest
import structlog
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from quanticity.ibkr.contracts import REQUEST_ATTEMPTS, RequestUnanswered, answered, qualify
from quanticity.ibkr.metrics import IbkrMetrics
from quanticity.ibkr.pacing import MARKET_DATA, ORDERS, Pacer, no_pacing
from quanticity.ibkr.settings import Pacing
from quanticity.simulation.market import SimulatedMarket
from quanticity.simulation.tws import TwsSimConfig, TwsSimulator
from tests.conftest import Stack, free_port, unique

pytestmark = pytest.mark.integration

TWS_LIMIT = 50
REQ_CONTRACT_DATA = 9  # client message ids (ib_insync.client)
REQ_SEC_DEF_OPT_PARAMS = 78


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


async def test_a_request_tws_drops_over_its_rate_is_sent_again_and_answered() -> None:
    """TWS drops a message over its rate without answering it: qualify asks again after the timeout."""
    market = SimulatedMarket(11, datetime.now(UTC), ["SPY", "QQQ"])
    sim = TwsSimulator(market, TwsSimConfig(tick_interval_s=0.5))
    await sim.start()
    ib = ib_insync.IB()
    codes: list[int] = []
    ib.errorEvent += lambda req_id, code, text, contract: codes.append(code)
    registry = CollectorRegistry()
    metrics = IbkrMetrics(registry)
    try:
        await ib.connectAsync("127.0.0.1", sim.port, clientId=6, timeout=10)
        sim.state.faults.drop_next(REQ_CONTRACT_DATA)  # the next reqContractDetails goes unanswered
        contracts = [ib_insync.Stock("SPY", "SMART", "USD"), ib_insync.Stock("QQQ", "SMART", "USD")]
        with structlog.testing.capture_logs() as logs:
            async with asyncio.timeout(20):  # without the timeout inside, qualify would wait for ever
                done = await qualify(ib, contracts, no_pacing, timeout_s=1.0, metrics=metrics)
        assert [c.symbol for c in done] == ["SPY", "QQQ"] and all(c.conId for c in done)
        assert 100 in codes  # the drop was announced as TWS does, with no request id
        unanswered = [e for e in logs if e["event"] == "ibkr_request_unanswered"]
        assert [(e["request"], e["attempt"]) for e in unanswered] == [("reqContractDetails", 1)]
        assert registry.get_sample_value("ibkr_error_events_total", {"code": "unanswered"}) == 1
    finally:
        ib.disconnect()
        await sim.stop()


async def test_a_request_never_answered_gives_up_as_a_connection_error() -> None:
    """Every try dropped: ``RequestUnanswered`` (a ConnectionError: the ingest subscribes again once connected)."""
    market = SimulatedMarket(11, datetime.now(UTC), ["SPY"])
    sim = TwsSimulator(market, TwsSimConfig(tick_interval_s=0.5))
    await sim.start()
    ib = ib_insync.IB()
    try:
        await ib.connectAsync("127.0.0.1", sim.port, clientId=7, timeout=10)
        sim.state.faults.drop_next(REQ_SEC_DEF_OPT_PARAMS, REQUEST_ATTEMPTS)
        spy = ib_insync.Stock("SPY", "SMART", "USD")
        await qualify(ib, [spy], no_pacing, timeout_s=1.0)
        with pytest.raises(RequestUnanswered, match="reqSecDefOptParams in 3 tries"):
            await answered(
                partial(ib.reqSecDefOptParamsAsync, "SPY", "", "STK", spy.conId),
                "reqSecDefOptParams",
                pace=no_pacing,
                cost=1,
                timeout_s=0.5,
            )
        assert issubclass(RequestUnanswered, ConnectionError)
        # the fault is used up: the same request is answered now
        chains = await answered(
            partial(ib.reqSecDefOptParamsAsync, "SPY", "", "STK", spy.conId),
            "reqSecDefOptParams",
            pace=no_pacing,
            cost=1,
            timeout_s=5.0,
        )
        assert chains
    finally:
        ib.disconnect()
        await sim.stop()
