"""A Redis token bucket that keeps every process sharing a key inside one AlphaVantage quota.

Each request takes one token from its function's bucket and one from a global bucket in a
single Lua script, so the check and the take are atomic across processes. The script
reads the time with Redis ``TIME``: the refill never depends on the clocks of the
processes, only on the server's. Defaults: 8 requests/s per function and 8 requests/s
(480/min) in total, under the 600/min premium plan with room for retries and bursts.

How a request gets its slot:

* If its function's bucket holds no whole token, nothing is taken and the caller is told
  how long until it will; it sleeps and asks again.
* Otherwise it books the earliest instant ``s >= now`` at which the global bucket has a
  token, takes one token from both buckets *at* ``s``, and the caller sleeps until ``s``.
  Global slots are thus handed out first come, first served, with no thundering herd.

A bucket whose recorded time lies further ahead of the server's clock than any booking can
(``MAX_BOOKED_AHEAD_S``) records a clock that went back (a VM restored from a snapshot, a
manual fix of the clock): it is taken as full at the server's now, with a warning, instead
of making every request wait until the old time comes round again (hours, for a step of hours).

Each bucket records the time of its last booked token and never books one earlier, so
both buckets see their tokens taken in time order and the token-bucket guarantee holds
exactly: over any window of T seconds a bucket grants at most ``rate * T + burst``
requests, whoever asks. A function has at most one booking in the future (its bucket's
last token time blocks the next until then), so a busy function cannot queue ahead of
the others: under a saturated ceiling the functions take turns.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import structlog
from prometheus_client import Counter, Gauge, Histogram
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from quanticity.errors import RedisUnavailableError

log = structlog.get_logger(__name__)

GLOBAL_BUCKET = "global"  # lower case, so it can never collide with an (upper-case) function name

# KEYS: the function's bucket, the global bucket. ARGV: ttl_ms (when idle), then rate_per_s
# and burst of each, then the longest a booking may lie ahead (s). A bucket hash holds
# ``tokens`` left at time ``ts`` (``ts`` may be a booked instant in the future). Returns
# {status, wait_s, tokens_fn, tokens_global, reset}: status 0 = granted now, 2 = granted at
# now + wait_s, 1 = refused (the function's bucket is short; ask again after wait_s). Token
# levels are as of now; negative = booked ahead. ``reset``: 1 per bucket whose ``ts`` lay
# beyond the longest booking (the server's clock went back), taken as full at now.
# Floats go back as strings because Redis truncates Lua numbers to integers in replies.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ttl = tonumber(ARGV[1])
local rate = {tonumber(ARGV[2]), tonumber(ARGV[4])}
local burst = {tonumber(ARGV[3]), tonumber(ARGV[5])}
local ahead = tonumber(ARGV[6])
local k, ts = {}, {}
local reset = 0
for i = 1, 2 do
  local state = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
  k[i], ts[i] = tonumber(state[1]), tonumber(state[2])
  if k[i] ~= nil and ts[i] ~= nil and ts[i] - now > ahead then
    k[i], ts[i] = nil, nil
    reset = reset + 1
  end
  if k[i] == nil or ts[i] == nil then
    k[i], ts[i] = burst[i], now
  end
end
-- earliest instant, not before the last booked one, at which bucket i holds a whole token
local function ready(i)
  if k[i] >= 1 then return ts[i] end
  return ts[i] + (1 - k[i]) / rate[i]
end
-- tokens of bucket i at instant x >= ts[i]
local function level(i, x)
  return math.min(burst[i], k[i] + (x - ts[i]) * rate[i])
end
local function now_levels()
  local out = {}
  for i = 1, 2 do
    if now >= ts[i] then out[i] = level(i, now) else out[i] = k[i] - (ts[i] - now) * rate[i] end
  end
  return out
end
local own = ready(1)
if own > now then
  local lv = now_levels()
  return {1, tostring(own - now), tostring(lv[1]), tostring(lv[2]), reset}
end
local slot = math.max(now, ready(2))
for i = 1, 2 do
  k[i] = level(i, slot) - 1
  ts[i] = slot
  redis.call('HSET', KEYS[i], 'tokens', k[i], 'ts', slot)
  redis.call('PEXPIRE', KEYS[i], ttl + math.ceil((slot - now) * 1000))
end
local lv = now_levels()
local status = 0
if slot > now then status = 2 end
return {status, tostring(slot - now), tostring(lv[1]), tostring(lv[2]), reset}
"""
_SCRIPT_SHA = hashlib.sha1(_SCRIPT.encode(), usedforsecurity=False).hexdigest()
# A refused waiter must find the token when it wakes: asyncio may fire a timer a hair early.
_WAKE_MARGIN_S = 0.001
#: No booking lies further ahead than this: at 8 requests/s it would take 2,400 requests
#: queued for the global bucket, far more than any process keeps in flight. A bucket time
#: beyond it can only come from a server clock that went back.
MAX_BOOKED_AHEAD_S = 300.0


@dataclass(frozen=True)
class Bucket:
    """The refill rate and capacity of one bucket.

    Raises:
        ValueError: a rate that is not positive, or a burst below one request.
    """

    rate_per_s: float
    burst: float

    def __post_init__(self) -> None:
        if not (self.rate_per_s > 0 and math.isfinite(self.rate_per_s)):
            raise ValueError(f"rate_per_s must be a positive number, got {self.rate_per_s}")
        if not (self.burst >= 1 and math.isfinite(self.burst)):
            raise ValueError(f"burst must be at least 1, got {self.burst}")


@dataclass(frozen=True)
class RateLimits:
    """Buckets of the limiter: the global ceiling, the per-function default and overrides."""

    global_bucket: Bucket = Bucket(rate_per_s=8.0, burst=8.0)
    function_default: Bucket = Bucket(rate_per_s=8.0, burst=8.0)
    function_overrides: Mapping[str, Bucket] = field(default_factory=dict)

    def for_function(self, function: str) -> Bucket:
        """The bucket of ``function``."""
        return self.function_overrides.get(function, self.function_default)


@dataclass(frozen=True, slots=True)
class Attempt:
    """The answer to one request for a slot.

    Attributes:
        granted: a slot is booked; send after ``wait_s`` seconds (0 = now).
        wait_s: when granted, the wait until the booked slot; when refused, until the
            function's bucket holds a token again (ask then).
        limited_by: the bucket that made the caller wait (the function when refused,
            ``GLOBAL_BUCKET`` when the slot is in the future), ``None`` when granted now.
        tokens: tokens per bucket name as of now; negative = slots already booked ahead.
    """

    granted: bool
    wait_s: float
    limited_by: str | None
    tokens: Mapping[str, float]


class LimiterMetrics(Protocol):
    """What the limiter records: tokens per bucket, refusals, and the time callers waited."""

    @property
    def ratelimit_tokens(self) -> Gauge: ...

    @property
    def ratelimit_limited(self) -> Counter: ...

    @property
    def ratelimit_wait(self) -> Histogram: ...


class RateLimiter:
    """Per-function and global token buckets in Redis, shared by every process using the same keys.

    Args:
        redis: an asyncio client (either ``decode_responses`` setting works).
        metrics: wait, token and refusal metrics.
        limits: bucket rates and bursts.
        key_prefix: namespace prepended to every key (the Redis settings' ``key_prefix``).
        namespace: which service's budget (``alphavantage``, ``ibkr``): its keys never mix with another's.
        sleep: waits between attempts (tests may pass a fake).
        rng: source of the small wake-up jitter that keeps waiters from retrying in lockstep.
    """

    def __init__(
        self,
        redis: Redis,
        metrics: LimiterMetrics,
        limits: RateLimits = RateLimits(),  # noqa: B008 - frozen dataclass, safe as a shared default
        *,
        key_prefix: str = "",
        namespace: str = "alphavantage",
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.redis = redis
        self.metrics = metrics
        self.limits = limits
        self.key_prefix = key_prefix
        self.namespace = namespace
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter, not cryptography

    def key(self, bucket: str) -> str:
        """The Redis key of a bucket (a function name or ``GLOBAL_BUCKET``)."""
        # The {namespace} hash tag (e.g. {alphavantage}) puts all buckets in one Redis Cluster slot, which a
        # script touching several keys requires; on a single server it is just a name.
        kind = "global" if bucket == GLOBAL_BUCKET else f"fn:{bucket}"
        return f"{self.key_prefix}ratelimit:{{{self.namespace}}}:{kind}"

    async def reserve(self, function: str) -> Attempt:
        """Book a slot for one request of ``function`` if its own bucket has a token now.

        Raises:
            RedisUnavailableError: Redis did not answer or refused the script.
        """
        own, ceiling = self.limits.for_function(function), self.limits.global_bucket
        # Idle keys may vanish once their bucket would be full again: absence means full.
        ttl_ms = math.ceil(1000 * (max(own.burst / own.rate_per_s, ceiling.burst / ceiling.rate_per_s) + 1))
        keys = [self.key(function), self.key(GLOBAL_BUCKET)]
        args = [ttl_ms, own.rate_per_s, own.burst, ceiling.rate_per_s, ceiling.burst, MAX_BOOKED_AHEAD_S]
        status, wait, *levels, reset = await self._run(keys, args)
        if int(reset):
            log.warning(
                "ratelimit_clock_went_back",
                namespace=self.namespace,
                function=function,
                buckets_reset=int(reset),
                detail=f"a bucket's booked time lay more than {MAX_BOOKED_AHEAD_S:.0f} s ahead of Redis's clock",
            )
        names = (function, GLOBAL_BUCKET)
        tokens = {name: float(value) for name, value in zip(names, levels, strict=True)}
        for name, value in tokens.items():
            self.metrics.ratelimit_tokens.labels(name).set(value)
        wait_s = float(wait)
        limited_by = {0: None, 1: function, 2: GLOBAL_BUCKET}[int(status)]
        if limited_by is not None:
            self.metrics.ratelimit_limited.labels(limited_by).inc()
        return Attempt(int(status) != 1, wait_s, limited_by, tokens)

    async def acquire(self, function: str) -> float:
        """Wait until a request of ``function`` may be sent and return the seconds waited.

        Raises:
            RedisUnavailableError: Redis did not answer or refused the script.
        """
        waited = 0.0
        while True:
            attempt = await self.reserve(function)
            if attempt.granted:
                if attempt.wait_s > 0:
                    await self._sleep(attempt.wait_s)  # the slot is booked: no re-check needed
                    waited += attempt.wait_s
                self.metrics.ratelimit_wait.labels(function).observe(waited)
                return waited
            # Several waiters of one function refused together would wake together and all
            # but one be refused again; up to 10% jitter spreads them out.
            pause = attempt.wait_s * (1.0 + 0.1 * self._rng.random()) + _WAKE_MARGIN_S
            await self._sleep(pause)
            waited += pause

    async def _run(self, keys: list[str], args: list[float | int]) -> list[bytes | str | int]:
        try:
            try:
                reply = await self.redis.evalsha(_SCRIPT_SHA, len(keys), *keys, *args)
            except NoScriptError:
                # First use on this server, or after SCRIPT FLUSH / a restart: load and go on.
                await self.redis.script_load(_SCRIPT)
                reply = await self.redis.evalsha(_SCRIPT_SHA, len(keys), *keys, *args)
        except RedisError as exc:
            raise RedisUnavailableError("rate limiter", f"{type(exc).__name__}: {exc}") from exc
        # [int, str, str, …]: the strings come back as bytes unless decode_responses is set
        return list(reply)
