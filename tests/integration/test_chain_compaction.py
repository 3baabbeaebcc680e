"""The option store's own 1 m / 5 m compactions equal what Redis computes from the raw series.

The reference is the server itself: ``TS.RANGE raw - + AGGREGATION last <bucket>`` over the
raw samples the store wrote, for every bucket that has closed.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import TimeoutError as RedisTimeoutError

from quanticity.observability.metrics import Metrics
from quanticity.schemas import OptionChainSnapshot, utc_now
from quanticity.storage.option_store import OptionChainStore, chain_samples, chain_series
from quanticity.storage.redis_timeseries import TimeSeriesWriter
from tests.conftest import Stack, unique
from tests.integration.test_store_role import _chain

pytestmark = pytest.mark.integration

CADENCE = timedelta(seconds=12)


def _start() -> datetime:
    """A 5-minute boundary a while ago (within the raw retention), plus 6 s: polls straddle minutes."""
    now = utc_now().replace(microsecond=0) - timedelta(hours=2)
    return now - timedelta(minutes=now.minute % 5, seconds=now.second) + timedelta(seconds=6)


def _poll(n: int, t0: datetime) -> OptionChainSnapshot:
    """Poll ``n``: prices move each poll; some contracts have no iv, or no quote, in some polls."""
    at = t0 + n * CADENCE
    chain = _chain((t0 + timedelta(days=10)).date(), at, rows=12)
    bid = [b + 0.01 * n if (i + n) % 5 else None for i, b in enumerate(chain.bid)]  # no bid: no mark (no last)
    ask = [a + 0.01 * n for a in chain.ask if a is not None]
    iv = [v + 0.001 * n if v is not None and (i * n) % 4 else None for i, v in enumerate(chain.implied_vol)]
    return chain.model_copy(update={"bid": bid, "ask": ask, "implied_vol": iv, "record_id": f"p{n}"})


async def _range(redis: Redis, key: str, *aggregation: Any) -> list[tuple[int, float]]:
    reply = await redis.execute_command("TS.RANGE", key, "-", "+", *aggregation)
    return [(int(ts), float(value)) for ts, value in reply]


async def _assert_equal_to_server(redis: Redis, prefix: str, chain: OptionChainSnapshot, through: datetime) -> int:
    """Every compaction series holds exactly the server's ``last`` buckets that closed before ``through``."""
    keys = sorted(spec.key for spec in chain_series(chain))
    compared = 0
    for key in keys:
        for suffix, bucket_ms in (("1m", 60_000), ("5m", 300_000)):
            raw = f"{prefix}{key}"
            expected = await _range(redis, raw, "AGGREGATION", "last", bucket_ms)
            open_start = int(through.timestamp() * 1000) // bucket_ms * bucket_ms
            closed = [(ts, value) for ts, value in expected if ts < open_start]
            assert await _range(redis, f"{raw}:{suffix}") == closed, f"{key}:{suffix}"
            compared += len(closed)
    return compared


async def test_compactions_equal_the_servers_last_aggregation_across_a_restart(stack: Stack) -> None:
    """11 minutes of polls, the store restarted twice (once over a bucket boundary it was down for)."""
    redis = Redis.from_url(stack.redis_url)
    prefix = unique()
    t0 = _start()
    metrics = Metrics()
    try:
        store = OptionChainStore(TimeSeriesWriter(redis, metrics, prefix))
        derived = 0
        for n in range(55):  # 0:06 … 11:54 after the boundary
            if n in (17, 29):  # a new process: its open buckets come back from the raw series
                store = OptionChainStore(TimeSeriesWriter(redis, metrics, prefix))
            if 24 <= n < 29:  # down from 4:54 to 5:42: minute 4, open when it stopped, closes meanwhile
                continue
            result = await store.store([_poll(n, t0)])
            assert result.rejected == []
            derived += result.derived
            if n == 15:  # 3:06 closed minute 2; most of it is still to be written when the store stops at 17
                assert store.pending_compactions > 0
        derived += (await store.flush()).derived
        assert store.pending_compactions == 0
        last = t0 + 54 * CADENCE
        compared = await _assert_equal_to_server(redis, prefix, _poll(0, t0), last)
        assert compared == derived > 0
        written = metrics.registry.get_sample_value(
            "timeseries_samples_written_total", {"family": "options_compaction"}
        )
        assert written == derived
        assert not (await redis.execute_command("TS.INFO", f"{prefix}{chain_samples(_poll(0, t0))[0][0]}"))[b"rules"]
    finally:
        await redis.aclose()


async def test_a_write_that_fails_closes_the_same_bucket_on_retry(stack: Stack) -> None:
    """Redis stalls under the write that closes a minute (the write times out): the retry still writes that minute."""
    redis = Redis.from_url(stack.redis_url)
    impatient = Redis.from_url(stack.redis_url, socket_timeout=1.0)
    prefix = unique()
    t0 = _start()
    writer = TimeSeriesWriter(redis, Metrics(), prefix)
    store = OptionChainStore(writer)
    try:
        for n in range(5):  # 0:06 … 0:54: the first minute is open
            await store.store([_poll(n, t0)])
        writer.redis = impatient
        await redis.execute_command("CLIENT", "PAUSE", 3000, "WRITE")
        try:
            with pytest.raises(RedisTimeoutError):
                await store.store([_poll(5, t0)])  # 1:06 closes the first minute
        finally:
            await redis.execute_command("CLIENT", "UNPAUSE")
        writer.redis = redis
        assert (await store.store([_poll(5, t0)])).derived > 0
        await store.flush()
        assert await _assert_equal_to_server(redis, prefix, _poll(0, t0), t0 + 5 * CADENCE) > 0
    finally:
        await impatient.aclose()
        await redis.aclose()


async def test_a_closed_bucket_is_written_over_the_next_calls(stack: Stack) -> None:
    """The call that closes a minute writes a quarter of its series; three more calls write the rest."""
    redis = Redis.from_url(stack.redis_url)
    prefix = unique()
    t0 = _start()
    store = OptionChainStore(TimeSeriesWriter(redis, Metrics(), prefix), compaction_spread=4)
    try:
        for n in range(5):  # 0:06 … 0:54: the first minute is open
            assert (await store.store([_poll(n, t0)])).derived == 0
        closing = _poll(5, t0)  # 1:06 closes the first minute
        series = len(chain_series(closing))
        shares = [(await store.store([closing])).derived]
        pending = [store.pending_compactions]
        for n in range(6, 9):
            shares.append((await store.store([_poll(n, t0)])).derived)
            pending.append(store.pending_compactions)
        assert 0 < shares[0] <= -(-series // 4) + 1  # one share of the closed bucket, not all of it
        assert pending[0] > 0 and pending[-1] == 0
        assert sum(shares) == await _assert_equal_to_server(redis, prefix, closing, t0 + 8 * CADENCE)
        assert (await store.flush()).derived == 0  # nothing was left
    finally:
        await redis.aclose()


async def test_rules_left_by_an_earlier_version_are_deleted(stack: Stack) -> None:
    """Series an earlier version created with server rules lose them: no bucket is written twice."""
    redis = Redis.from_url(stack.redis_url)
    prefix = unique()
    t0 = _start()
    chain = _poll(1, t0)
    try:
        old = TimeSeriesWriter(redis, Metrics(), prefix)
        await old.ensure_series([replace(spec, client_compaction=False) for spec in chain_series(chain)])
        key = f"{prefix}{chain_series(chain)[0].key}"
        assert len((await redis.execute_command("TS.INFO", key))[b"rules"]) == 2
        await OptionChainStore(TimeSeriesWriter(redis, Metrics(), prefix)).store([chain])
        assert not (await redis.execute_command("TS.INFO", key))[b"rules"]
    finally:
        await redis.aclose()
