"""Redis TimeSeries writes: labelled series created once, samples in bulk ``TS.MADD``.

Series are created with ``DUPLICATE_POLICY LAST`` so a replay of the same input rewrites
samples instead of failing or duplicating them (at-least-once delivery, idempotent sink).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from quanticity.observability.metrics import Metrics
from quanticity.storage.resp import encode_madd

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SeriesSpec:
    """A series to create: key, labels and retention."""

    key: str
    labels: Mapping[str, str]
    retention_ms: int


@dataclass(frozen=True)
class MaddResult:
    """Outcome of one bulk write."""

    written: int
    rejected: list[tuple[str, str]]  # (key, error) per sample the server refused


class TimeSeriesWriter:
    """Writes samples to Redis TimeSeries.

    Args:
        redis: an asyncio client (``decode_responses=False``).
        metrics: latency, error and sample counters.
        key_prefix: namespace prepended to every key (tests use a random one).
    """

    def __init__(self, redis: Redis, metrics: Metrics, key_prefix: str = "") -> None:
        self.redis = redis
        self.metrics = metrics
        self.key_prefix = key_prefix
        self._created: set[str] = set()

    def unknown(self, keys: Iterable[str]) -> bool:
        """Whether any of ``keys`` is a series this writer has not created yet."""
        return any(key not in self._created for key in keys)

    def full_key(self, key: str) -> str:
        return self.key_prefix + key

    async def ensure_series(self, specs: Sequence[SeriesSpec]) -> None:
        """Create the series that this writer has not created yet (idempotent).

        Raises:
            RedisError: Redis is unreachable or refused a creation for another reason.
        """
        todo = [s for s in specs if s.key not in self._created]
        if not todo:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for spec in todo:
                args: list[str | int] = [
                    self.full_key(spec.key),
                    "RETENTION",
                    spec.retention_ms,
                    "DUPLICATE_POLICY",
                    "LAST",
                    "LABELS",
                ]
                for name, value in spec.labels.items():
                    args += [name, value]
                pipe.execute_command("TS.CREATE", *args)
            started = time.perf_counter()
            results = await pipe.execute(raise_on_error=False)
            self.metrics.redis_command_latency.labels(operation="ts_create").observe(time.perf_counter() - started)
        for spec, result in zip(todo, results, strict=True):
            if isinstance(result, ResponseError) and "already exists" not in str(result):
                self.metrics.redis_errors.labels(operation="ts_create").inc()
                raise result
            self._created.add(spec.key)

    async def madd(self, samples: Sequence[tuple[str, int, float]], family: str) -> MaddResult:
        """Write ``(key, timestamp_ms, value)`` samples in one ``TS.MADD``.

        NaN and infinite values are not sent (TimeSeries would store them as-is and
        poison aggregations); they count as rejected.

        Raises:
            RedisError: the command could not be delivered (connection lost…).
        """
        rejected: list[tuple[str, str]] = []
        batch: list[tuple[bytes, int, float]] = []
        keys: list[str] = []
        for key, ts, value in samples:
            if not math.isfinite(value):
                rejected.append((key, "value is not finite"))
                continue
            batch.append((self.full_key(key).encode(), ts, value))
            keys.append(key)
        if not batch:
            return MaddResult(0, rejected)
        packed = encode_madd(batch)
        started = time.perf_counter()
        pool = self.redis.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        try:
            await conn.send_packed_command(packed, check_health=False)
            reply = await conn.read_response(disable_decoding=True)
        except (RedisError, OSError) as exc:
            await conn.disconnect()
            self.metrics.redis_errors.labels(operation="ts_madd").inc()
            if isinstance(exc, RedisError):
                raise
            raise RedisConnectionError(f"TS.MADD failed: {exc}") from exc
        finally:
            await pool.release(conn)
        self.metrics.redis_command_latency.labels(operation="ts_madd").observe(time.perf_counter() - started)
        if isinstance(reply, ResponseError):
            self.metrics.redis_errors.labels(operation="ts_madd").inc()
            raise reply
        written = 0
        for key, item in zip(keys, reply, strict=True):
            if isinstance(item, ResponseError):
                rejected.append((key, str(item)))
            else:
                written += 1
        if rejected:
            self.metrics.redis_errors.labels(operation="ts_madd_sample").inc(len(rejected))
            log.warning("timeseries_samples_rejected", count=len(rejected), first=rejected[0])
        self.metrics.timeseries_samples_written.labels(family=family).inc(written)
        return MaddResult(written, rejected)
