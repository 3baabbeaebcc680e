"""VPIN after a restart: the stream starts with the stored 1-minute bars, not from nothing.

``n = 50`` buckets of ``ADV / 50`` hold one ADV of volume, so a stream fed only by the bars
of its own run published nothing for a whole session after every restart. Against the real
Redis Stack: stored bars of three earlier sessions and of this morning (some of them the same
minutes as this run's first trades), then this run's trades.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from redis.asyncio import Redis

from quanticity.agents.analytics_config import AnalyticsConfig
from quanticity.agents.analytics_micro import VpinService
from quanticity.analytics.bars import ONE_MINUTE_NS, aggregate_ticks
from quanticity.analytics.vpin import VPINConfig, compute_vpin
from quanticity.observability.metrics import Metrics
from quanticity.schemas import Tick
from quanticity.settings import Settings
from tests.conftest import Stack, unique
from tests.unit.agents.test_analytics_micro import Clock, Recorder

pytestmark = pytest.mark.integration

SETTINGS = Settings(_env_file=None, run_id="it")  # type: ignore[call-arg]
RESTART = datetime(2026, 11, 24, 15, 30, tzinfo=UTC)  # Tuesday 10:30 ET, an hour into the session
SESSION_OPENS = [datetime(2026, 11, d, 14, 30, tzinfo=UTC) for d in (19, 20, 23)]  # Thu, Fri, Mon


@pytest.fixture
async def redis(stack: Stack) -> AsyncIterator[Redis]:
    client = Redis.from_url(stack.redis_url)
    yield client
    await client.aclose()


def _stored_bars(rng: np.random.Generator) -> list[tuple[int, float, float]]:
    """(start ms, close, volume): three full sessions, then today from the open to 10:40 ET."""
    starts = [o + timedelta(minutes=i) for o in SESSION_OPENS for i in range(390)]
    starts += [RESTART - timedelta(hours=1) + timedelta(minutes=i) for i in range(70)]  # 09:30-10:39 ET
    close = 600.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0008, len(starts))))
    volume = rng.integers(50_000, 150_000, len(starts)).astype(float)
    return [(int(t.timestamp() * 1000), float(c), float(v)) for t, c, v in zip(starts, close, volume, strict=True)]


def _trade(i: int, t: datetime, price: float, size: float) -> Tick:
    envelope = {"record_id": f"t{i}", "event_time": t, "ingest_time": t, "source": "sim", "run_id": "t", "mode": "sim"}
    return Tick(symbol="SPY", kind="trade", price=price, size=size, **envelope)


async def _store_bars(redis: Redis, prefix: str, bars: list[tuple[int, float, float]]) -> None:
    """``(start ms, close, volume)`` into ``bars:SPY:60s:close|volume``, as the store role keeps them."""
    for field, column in (("close", 1), ("volume", 2)):
        key = f"{prefix}bars:SPY:60s:{field}"
        await redis.execute_command("TS.CREATE", key, "DUPLICATE_POLICY", "LAST")
        await redis.execute_command("TS.MADD", *[part for row in bars for part in (key, row[0], row[column])])


def _trades(rng: np.random.Generator, minutes: int) -> list[Tick]:
    ticks, price = [], 600.0
    for i in range(minutes * 20):
        t = RESTART + timedelta(seconds=3.0 * i + 0.5)
        price *= math.exp(rng.normal(0.0, 0.0004))
        ticks.append(_trade(i, t, round(price, 2), float(rng.integers(100, 9000))))
    return ticks


async def test_a_restarted_stream_starts_with_the_stored_bars_before_its_first_own_bar(redis: Redis) -> None:
    rng = np.random.default_rng(11)
    prefix = f"t{unique()}:"
    stored = _stored_bars(rng)
    await _store_bars(redis, prefix, stored)
    emitter, metrics = Recorder(), Metrics()
    clock = Clock(RESTART)
    service = VpinService(
        emitter,
        metrics.analytics,
        AnalyticsConfig(),
        lambda: SETTINGS,
        redis=lambda: redis,
        key_prefix=prefix,
        clock=clock,
    )
    ticks = _trades(rng, minutes=10)
    for tick in ticks:
        service.on_tick(tick)
    clock.now = ticks[-1].event_time + timedelta(seconds=61)
    await service.tick()

    assert emitter.emitted, "no VPIN ten minutes after the restart"
    doc = emitter.documents()[0]
    # History: the complete sessions give the ADV; every stored bar before 10:30 ET (this run's
    # first bar) comes first, the stored 10:30-10:39 bars are left out (this run's trades cover them).
    assert doc["adv_source"] == "history"
    adv = sum(v for _, _, v in stored[: 3 * 390]) / 3
    assert doc["adv"] == pytest.approx(adv)
    cut = int(RESTART.timestamp() * 1000)
    before = [(c, v) for ts, c, v in stored if ts < cut]
    assert doc["history_bars"] == len(before) == 3 * 390 + 60
    times = np.array([int(t.event_time.timestamp() * 1e9) for t in ticks])
    own = aggregate_ticks(times, [t.price for t in ticks], [t.size for t in ticks], interval_ns=ONE_MINUTE_NS)
    volume = np.concatenate([[v for _, v in before], own.volume])
    close = np.concatenate([[c for c, _ in before], own.close])
    batch = compute_vpin(volume, close, VPINConfig(bucket_volume=adv / 50, window=50, sigma="rolling"))
    assert doc["vpin"] == pytest.approx(batch.latest_vpin, rel=1e-12)
    assert doc["bars"] == len(before) + len(own)


async def test_a_symbol_waiting_for_its_adv_reads_the_store_once_per_interval_and_primes_from_a_fresh_read(
    redis: Redis,
) -> None:
    """Before 2% of the session has passed the ADV is unknown (no complete stored session, none
    configured): the stored bars are read once, not on every 10 s tick; when the ADV becomes
    known, the stream primes from a new read, which sees the bars stored meanwhile."""
    rng = np.random.default_rng(5)
    prefix = f"t{unique()}:"
    opened = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
    reads = 0

    def client() -> Redis:
        nonlocal reads
        reads += 1
        return redis

    clock = Clock(opened + timedelta(minutes=6, seconds=5))
    config = AnalyticsConfig(vpin_adv_min_session_fraction=0.02)
    service = VpinService(
        Recorder(), Metrics().analytics, config, lambda: SETTINGS, redis=client, key_prefix=prefix, clock=clock
    )
    for i in range(6 * 60):  # 09:30-09:36 ET, a trade a second
        t = opened + timedelta(seconds=i + 0.5)
        service.on_tick(_trade(i, t, 600.0 + i % 7 * 0.01, 100.0))
    for _ in range(11):  # 09:36:05 ... 09:37:45: 1.5-1.9% of the session, no ADV yet
        await service.tick()
        clock.now += timedelta(seconds=10)
    assert service.symbols["SPY"].stream is None and reads == 1
    # Yesterday's first 200 minutes are stored meanwhile (not a complete session: no ADV from them).
    day = opened - timedelta(days=1)
    yesterday = [
        (
            int((day + timedelta(minutes=i)).timestamp() * 1000),
            600.0 + float(rng.normal(0, 0.5)),
            float(rng.integers(1_000, 9_000)),
        )
        for i in range(200)
    ]
    await _store_bars(redis, prefix, yesterday)
    clock.now = opened + timedelta(minutes=8, seconds=5)  # 2.1% of the session: the ADV from the session so far
    await service.tick()
    state = service.symbols["SPY"]
    assert state.stream is not None and state.adv_source == "session_so_far"
    assert reads == 2 and state.history_bars == 200
