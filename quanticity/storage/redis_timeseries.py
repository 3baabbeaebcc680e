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
class Compaction:
    """A downsampled copy of a series, kept by a server-side rule.

    RedisTimeSeries cannot chain rules (a compaction cannot feed another), so the 1 s → 1 m
    → 5 m ladder is two rules from the raw series, one per resolution.
    """

    suffix: str
    bucket_ms: int
    aggregation: str
    retention_ms: int


#: The hot-store ladder (ARCHITECTURE.md §3): raw → 1 m (30 days) and raw → 5 m (90 days).
PRICE_LADDER = (Compaction("1m", 60_000, "last", 30 * 86_400_000), Compaction("5m", 300_000, "last", 90 * 86_400_000))
VOLUME_LADDER = (Compaction("1m", 60_000, "sum", 30 * 86_400_000), Compaction("5m", 300_000, "sum", 90 * 86_400_000))


@dataclass(frozen=True)
class SeriesSpec:
    """A series to create: key, labels, retention and its compactions."""

    key: str
    labels: Mapping[str, str]
    retention_ms: int
    compactions: tuple[Compaction, ...] = ()
    chunk_size: int | None = None  # bytes; None = the server default (4096)


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
        commands: list[tuple[SeriesSpec, list[str | int]]] = []
        for spec in todo:
            chunk: list[str | int] = ["CHUNK_SIZE", spec.chunk_size] if spec.chunk_size else []
            commands.append((spec, ["TS.CREATE", *self._create_args(spec.key, spec.retention_ms, spec.labels), *chunk]))
            for c in spec.compactions:
                dest = f"{spec.key}:{c.suffix}"
                labels = {**spec.labels, "resolution": c.suffix}
                commands.append((spec, ["TS.CREATE", *self._create_args(dest, c.retention_ms, labels)]))
                commands.append(
                    (
                        spec,
                        [
                            "TS.CREATERULE",
                            self.full_key(spec.key),
                            self.full_key(dest),
                            "AGGREGATION",
                            c.aggregation,
                            c.bucket_ms,
                        ],
                    )
                )
        async with self.redis.pipeline(transaction=False) as pipe:
            for _, command in commands:
                pipe.execute_command(*command)
            started = time.perf_counter()
            results = await pipe.execute(raise_on_error=False)
            self.metrics.redis_command_latency.labels(operation="ts_create").observe(time.perf_counter() - started)
        for (_, command), result in zip(commands, results, strict=True):
            # Another writer (or an earlier run) got there first: the series/rule exists, as wanted.
            if isinstance(result, ResponseError) and not any(
                text in str(result) for text in ("already exists", "already has a")
            ):
                self.metrics.redis_errors.labels(operation=str(command[0]).lower().replace(".", "_")).inc()
                raise result
        self._created.update(spec.key for spec in todo)

    def _create_args(self, key: str, retention_ms: int, labels: Mapping[str, str]) -> list[str | int]:
        args: list[str | int] = [self.full_key(key), "RETENTION", retention_ms, "DUPLICATE_POLICY", "LAST", "LABELS"]
        for name, value in labels.items():
            args += [name, value]
        return args

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
