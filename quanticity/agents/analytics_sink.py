"""Where every analytics result goes: Redis (TTL = validity) and the ``analytics`` topic, metered.

A failure of one sink does not stop the other: a result that Redis refused still reaches the
topic and the reverse. Each failure is logged and counted in
``analytics_failure_total{module, reason=redis|publish}``; nothing is retried, because the next
input recomputes a fresher result well within the old one's validity.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson
import structlog
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from quanticity.app.context import RoleContext
from quanticity.schemas import AnalyticsResult, Source, stable_id, utc_now
from quanticity.settings.model import Settings
from quanticity.storage.analytics_store import AnalyticsStore, ResultWrite

log = structlog.get_logger(__name__)

#: The record symbol (and metric label) of results about the whole market: regime, macro, stress, risk.
MARKET = "MARKET"


class Emitter(Protocol):
    """Where a service hands its results (the :class:`ResultSink`; tests pass a recorder)."""

    async def emit(
        self,
        module: str,
        symbol: str,
        writes: Sequence[ResultWrite],
        result: AnalyticsResult | None,
        *,
        ingest_time: datetime | None = None,
    ) -> bool: ...


@dataclass(frozen=True)
class Provenance:
    """Where a result comes from.

    Attributes:
        source: the source of its inputs (``platform`` when it has none of its own).
        event_time: event time of its newest input (the result describes the market then).
        input_ids: record ids of its inputs (the newest few for streaming kernels).
        ingest_time: ingest time of its newest input, for ``analytics_end_to_end_ms``.
    """

    source: Source
    event_time: datetime
    input_ids: tuple[str, ...] = ()
    ingest_time: datetime | None = None


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def kernel_result(
    *,
    module: str,
    key: str,
    symbol: str,
    payload: Mapping[str, Any],
    values: Mapping[str, float | None],
    computed_at: datetime,
    valid_until: datetime,
    provenance: Provenance,
    settings: Settings,
) -> tuple[ResultWrite, AnalyticsResult]:
    """The Redis document and the ``analytics`` record of one kernel result.

    The document carries ``schema``, ``kind``, ``symbol``, ``source``, ``computed_at``,
    ``valid_until``, ``event_time`` and ``input_ids`` before the kernel's own ``payload``
    (NaN → null). The record id depends on the inputs only, so a replay, or a timer
    re-running on unchanged inputs, produces the same id.
    """
    document = {
        "schema": f"quanticity.analytics.{module}/1",
        "kind": module,
        "symbol": symbol,
        "producer": "analytics",
        "source": provenance.source,
        "computed_at": computed_at.isoformat(),
        "valid_until": valid_until.isoformat(),
        "event_time": provenance.event_time.isoformat(),
        "input_ids": list(provenance.input_ids),
        **payload,
    }
    raw = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
    record = AnalyticsResult(
        record_id=stable_id("analytics", module, symbol, provenance.event_time.isoformat(), *provenance.input_ids),
        event_time=provenance.event_time,
        source=provenance.source,
        run_id=settings.run_id,
        mode=settings.mode,
        symbol=symbol,
        kind=module,
        computed_at=computed_at,
        valid_until=valid_until,
        values={name: _number(v) for name, v in values.items()},
        input_ids=list(provenance.input_ids),
    )
    return ResultWrite(key, module, raw, valid_until), record


class ResultSink:
    """Stores and publishes results of one role.

    Args:
        app: the role's Faust app (for the ``analytics`` topic).
        ctx: metrics, settings and Redis.
        store: the Redis side; None = an ``AnalyticsStore`` on ``ctx.redis()``, created on first
            use (on the running loop, which the Redis client binds to).
    """

    def __init__(self, app: Any, ctx: RoleContext, store: AnalyticsStore | None = None) -> None:
        self.ctx = ctx
        self._store = store
        self.topic = ctx.topic(app, "analytics")
        self.metrics = ctx.metrics.analytics

    @property
    def store(self) -> AnalyticsStore:
        """The Redis side of the sink."""
        if self._store is None:
            prefix = self.ctx.settings.current.redis.key_prefix
            self._store = AnalyticsStore(self.ctx.redis(), self.metrics, prefix)
        return self._store

    async def emit(
        self,
        module: str,
        symbol: str,
        writes: Sequence[ResultWrite],
        result: AnalyticsResult | None,
        *,
        ingest_time: datetime | None = None,
    ) -> bool:
        """Store ``writes``, publish ``result``, update the result metrics.

        Args:
            module: the kernel (metric label).
            symbol: the underlying, or :data:`MARKET`.
            writes: the Redis documents of this result.
            result: the record for the ``analytics`` topic (None: store only).
            ingest_time: the input's ingest time, for ``analytics_end_to_end_ms``.

        Returns:
            True when every write was stored (none stale, none failed). A result already past
            its ``valid_until`` is neither stored nor published (``analytics_stale_results_total``).
        """
        if result is not None and result.valid_until <= utc_now():
            self.metrics.stale_results.labels(module=module).inc()
            log.info("analytics_result_stale_dropped", module=module, symbol=symbol, correlation_id=result.record_id)
            return False
        stored_all = await self._write(module, writes)
        now = utc_now()
        if stored_all and writes:
            if ingest_time is not None:
                self.metrics.end_to_end_ms.labels(module=module).observe(
                    max((now - ingest_time).total_seconds() * 1000.0, 0.0)
                )
            self.metrics.last_result.labels(module=module, symbol=symbol).set(now.timestamp())
        if result is not None:
            await self._publish(module, result)
        if stored_all:
            self.metrics.results.labels(module=module).inc()
        return stored_all

    async def _write(self, module: str, writes: Sequence[ResultWrite]) -> bool:
        if not writes:
            return True
        try:
            stored = await self.store.write(writes)
        except RedisError as exc:
            self.metrics.failures.labels(module=module, reason="redis").inc()
            self.ctx.metrics.redis_errors.labels(operation="analytics_set").inc()
            log.error("analytics_store_failed", module=module, keys=[w.key for w in writes][:5], error=str(exc))
            return False
        return len(stored) == len(writes)

    async def _publish(self, module: str, result: AnalyticsResult) -> None:
        started = time.perf_counter()
        try:
            await (await self.topic.send(key=result.key.encode(), value=result))
        except (TimeoutError, KafkaError, OSError) as exc:
            self.metrics.failures.labels(module=module, reason="publish").inc()
            self.ctx.metrics.broker_errors.labels(kind="produce").inc()
            log.error("analytics_result_not_published", module=module, error=repr(exc), correlation_id=result.record_id)
            return
        self.ctx.metrics.topic_produce_latency.labels(topic="analytics").observe(time.perf_counter() - started)
        self.ctx.metrics.topic_produced.labels(topic="analytics").inc()
