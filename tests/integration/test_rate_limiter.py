"""Integration tests of quanticity.data_ingestion.rate_limiter against a real Redis Stack.

Concurrent acquirers hammer the limiter for a few seconds; the grants they get must stay
inside the token-bucket bound ``rate * T + burst`` per function and globally, also when
two limiter instances with their own Redis connections share the keys.
"""

from __future__ import annotations

import asyncio
import bisect
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
import structlog
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from quanticity.data_ingestion.av_metrics import AlphaVantageMetrics
from quanticity.data_ingestion.rate_limiter import GLOBAL_BUCKET, Bucket, RateLimiter, RateLimits
from quanticity.errors import RedisUnavailableError
from tests.conftest import Stack, free_port, unique

pytestmark = pytest.mark.integration

RUN_S = 3.0


@pytest.fixture
async def redis_factory(stack: Stack) -> AsyncIterator[Callable[..., Redis]]:
    """Independent Redis clients (own connection pools) to the session's Redis Stack."""
    made: list[Redis] = []

    def make(decode_responses: bool = False) -> Redis:
        client = Redis.from_url(stack.redis_url, decode_responses=decode_responses)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


@dataclass
class Hammer:
    """Grant times (seconds since start, function) within the run, and every wait returned."""

    grants: list[tuple[float, str]] = field(default_factory=list)
    waits: list[tuple[str, float]] = field(default_factory=list)

    def count(self, function: str | None = None) -> int:
        return sum(1 for _, fn in self.grants if function is None or fn == function)

    def busiest_window(self, width: float, function: str | None = None) -> int:
        times = sorted(t for t, fn in self.grants if function is None or fn == function)
        return max((bisect.bisect_right(times, t + width) - i for i, t in enumerate(times)), default=0)


async def hammer(limiter: RateLimiter, functions: list[str], workers: int, seconds: float, into: Hammer) -> None:
    """``workers`` tasks acquire in a loop (worker i uses ``functions[i % len]``) for ``seconds``."""
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def worker(function: str) -> None:
        while True:
            waited = await limiter.acquire(function)
            into.waits.append((function, waited))
            now = loop.time() - start
            if now > seconds:
                return
            into.grants.append((now, function))

    await asyncio.gather(*(worker(functions[i % len(functions)]) for i in range(workers)))


def bound(bucket: Bucket, seconds: float) -> float:
    return bucket.rate_per_s * seconds + bucket.burst


async def test_concurrent_acquirers_stay_within_the_function_and_global_buckets(
    redis_factory: Callable[..., Redis],
) -> None:
    """Slow functions are held by their own bucket, busy ones by the global ceiling; neither bound is passed."""
    slow, busy, ceiling = Bucket(2.0, 2.0), Bucket(10.0, 5.0), Bucket(8.0, 4.0)
    limits = RateLimits(
        global_bucket=ceiling, function_default=busy, function_overrides={"SLOW_A": slow, "SLOW_B": slow}
    )
    registry = CollectorRegistry()
    limiter = RateLimiter(redis_factory(), AlphaVantageMetrics(registry), limits, key_prefix=unique("rl"))
    result = Hammer()

    await hammer(limiter, ["SLOW_A", "SLOW_B", "BUSY_C", "BUSY_D"], workers=24, seconds=RUN_S, into=result)

    for function in ("SLOW_A", "SLOW_B"):
        assert result.count(function) <= bound(slow, RUN_S)
        assert result.count(function) >= slow.rate_per_s * RUN_S * 0.8  # held, not starved
    assert result.count() <= bound(ceiling, RUN_S)
    assert result.count() >= ceiling.rate_per_s * RUN_S * 0.8
    # Any one-second window, not just the whole run. The +1 absorbs the gap between the
    # moment Redis grants a token and the moment the worker notes the time.
    assert result.busiest_window(1.0) <= bound(ceiling, 1.0) + 1
    assert result.busiest_window(1.0, "SLOW_A") <= bound(slow, 1.0) + 1
    sample = registry.get_sample_value
    assert (sample("ratelimit_limited_total", {"bucket": GLOBAL_BUCKET}) or 0) > 0
    assert (sample("ratelimit_limited_total", {"bucket": "SLOW_A"}) or 0) > 0


async def test_two_limiters_on_two_connections_share_one_budget(redis_factory: Callable[..., Redis]) -> None:
    """Two processes' limiters (modelled by two instances with their own clients) split one budget."""
    prefix = unique("rl")
    own = Bucket(5.0, 2.0)
    limits = RateLimits(global_bucket=Bucket(100.0, 100.0), function_default=own)
    first = RateLimiter(redis_factory(), AlphaVantageMetrics(CollectorRegistry()), limits, key_prefix=prefix)
    second = RateLimiter(redis_factory(), AlphaVantageMetrics(CollectorRegistry()), limits, key_prefix=prefix)
    one, two = Hammer(), Hammer()

    await asyncio.gather(
        hammer(first, ["REALTIME_OPTIONS"], workers=8, seconds=RUN_S, into=one),
        hammer(second, ["REALTIME_OPTIONS"], workers=8, seconds=RUN_S, into=two),
    )

    combined = one.count() + two.count()
    # Unshared buckets would grant about twice the bound; shared ones stay inside it.
    assert combined <= bound(own, RUN_S)
    assert combined >= own.rate_per_s * RUN_S * 0.8
    assert one.count() > 0 and two.count() > 0


async def test_waits_are_metered(redis_factory: Callable[..., Redis]) -> None:
    """Every acquisition is observed in ratelimit_wait_seconds with the wait it returned; tokens are gauged."""
    registry = CollectorRegistry()
    bucket = Bucket(4.0, 1.0)
    limiter = RateLimiter(
        redis_factory(),
        AlphaVantageMetrics(registry),
        RateLimits(function_default=bucket),
        key_prefix=unique("rl"),
    )
    result = Hammer()

    await hammer(limiter, ["SMA"], workers=4, seconds=1.5, into=result)

    sample = registry.get_sample_value
    waits = [w for _, w in result.waits]
    assert sample("ratelimit_wait_seconds_count", {"bucket": "SMA"}) == len(waits)
    assert sample("ratelimit_wait_seconds_sum", {"bucket": "SMA"}) == pytest.approx(sum(waits))
    assert sum(waits) > 0.5  # four workers on 4/s with burst 1 must queue
    assert max(waits) >= 1 / bucket.rate_per_s * 0.9
    tokens = sample("ratelimit_tokens", {"bucket": "SMA"})
    assert tokens is not None and 0.0 <= tokens <= bucket.burst
    assert sample("ratelimit_tokens", {"bucket": GLOBAL_BUCKET}) is not None


async def test_script_is_reloaded_after_a_flush(redis_factory: Callable[..., Redis]) -> None:
    """EVALSHA falls back to loading the script when the server lost it (restart, SCRIPT FLUSH)."""
    redis = redis_factory()
    limiter = RateLimiter(redis, AlphaVantageMetrics(CollectorRegistry()), key_prefix=unique("rl"))
    await limiter.acquire("CPI")

    await redis.script_flush()
    attempt = await limiter.reserve("CPI")

    assert attempt.granted
    assert attempt.tokens["CPI"] == pytest.approx(6.0, abs=0.5)  # burst 8, two taken, a little refill


async def test_bucket_keys_are_namespaced_and_expire(redis_factory: Callable[..., Redis]) -> None:
    """Keys carry the prefix and a TTL; a client with decode_responses=True works as well."""
    redis = redis_factory(decode_responses=True)
    prefix = unique("rl")
    limiter = RateLimiter(redis, AlphaVantageMetrics(CollectorRegistry()), key_prefix=prefix)

    await limiter.acquire("GLOBAL_QUOTE")

    keys = sorted(str(k) for k in await redis.keys(f"{prefix}*"))
    assert keys == [limiter.key("GLOBAL_QUOTE"), limiter.key(GLOBAL_BUCKET)]
    assert all(k.startswith(prefix + "ratelimit:{alphavantage}:") for k in keys)
    for key in keys:
        assert 0 < await redis.pttl(key) <= 3000  # burst/rate + 1 s: idle buckets are full anyway


async def test_redis_down_is_reported_as_such() -> None:
    redis = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    limiter = RateLimiter(redis, AlphaVantageMetrics(CollectorRegistry()))
    try:
        with pytest.raises(RedisUnavailableError):
            await limiter.acquire("SMA")
    finally:
        await redis.aclose()


async def test_grants_are_spread_across_functions(redis_factory: Callable[..., Redis]) -> None:
    """A function with many waiters does not crowd the others out of the global ceiling."""
    limits = RateLimits(global_bucket=Bucket(8.0, 4.0), function_default=Bucket(50.0, 10.0))
    limiter = RateLimiter(redis_factory(), AlphaVantageMetrics(CollectorRegistry()), limits, key_prefix=unique("rl"))
    result = Hammer()

    # A has 5 waiters, B/C/D one each.
    await hammer(limiter, ["A", "B", "C", "D", "A", "A", "A", "A"], workers=8, seconds=2.0, into=result)

    shares = Counter(fn for _, fn in result.grants)
    total = sum(shares.values())
    assert total <= bound(limits.global_bucket, 2.0)
    # Functions take turns at the saturated ceiling, whatever the number of waiters each has.
    assert min(shares[fn] for fn in "ABCD") >= 0.6 * total / 4


async def test_a_bucket_time_far_ahead_of_the_server_clock_is_taken_as_a_clock_step_back(
    redis_factory: Callable[..., Redis],
) -> None:
    """A booking never lies minutes ahead: a bucket time hours ahead of Redis's clock means the
    clock went back (here: a bucket left by a run whose clock was 8 h ahead). Every request
    used to wait until that time came round again; the bucket is now taken as full at now."""
    redis = redis_factory()
    limiter = RateLimiter(redis, AlphaVantageMetrics(CollectorRegistry()), key_prefix=f"t{unique()}:")
    seconds, micros = await redis.time()
    server_now = seconds + micros / 1e6
    for bucket in (GLOBAL_BUCKET, "REALTIME_OPTIONS"):
        await redis.hset(limiter.key(bucket), mapping={"tokens": -3, "ts": server_now + 8 * 3600})
    with structlog.testing.capture_logs() as logs:
        attempt = await limiter.reserve("REALTIME_OPTIONS")
    assert attempt.granted and attempt.wait_s == 0.0, attempt
    assert attempt.tokens == {"REALTIME_OPTIONS": pytest.approx(7.0), GLOBAL_BUCKET: pytest.approx(7.0)}
    state = await redis.hgetall(limiter.key(GLOBAL_BUCKET))
    assert abs(float(state[b"ts"]) - server_now) < 5.0
    assert [e["buckets_reset"] for e in logs if e["event"] == "ratelimit_clock_went_back"] == [2]
    # a booking a few seconds ahead is a booking, kept as it is
    await redis.hset(limiter.key(GLOBAL_BUCKET), mapping={"tokens": -1, "ts": server_now + 3.0})
    later = await limiter.reserve("TIME_SERIES_INTRADAY")
    assert later.granted and later.limited_by == GLOBAL_BUCKET and 3.0 < later.wait_s < 5.0
