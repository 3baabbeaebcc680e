"""Analytics results in Redis: written with a TTL equal to their validity, never read stale.

Keys (namespaced by ``settings.redis.key_prefix``):

- ``analytics:greeks:{symbol}:{expiry}``: one chain's Greeks document (JSON text);
- ``analytics:greeks:{symbol}``: the per-underlying summary over its fresh expiries;
- ``analytics:{kind}:{symbol}`` (``vpin``, ``liquidity``, ``moc``…) and ``analytics:{kind}``
  (``regime``, ``macro``, ``stress``…) for the other kernels;
- ``analytics:{kind}:log`` (list, newest first): change logs such as the regime's.

Every document carries ``computed_at`` and ``valid_until`` (ISO 8601). Documents are values
under plain string keys (``SET … PX``): one command sets value and TTL, and a 1 MB chain
document costs Redis ~1 ms instead of the ~12 ms a RedisJSON parse of its JSON takes (measured
on the embedded Redis Stack 7.4), time the single-threaded server would take from every
other client. Most documents are JSON text; a chain's Greeks are in the columnar wire form of
``schemas/columns.py`` (a JSON header, then raw float64 columns: half the bytes of JSON,
nothing to parse). :func:`decode_result` reads either into one mapping, the columns of a
columnar document under ``"columns"`` as float64 arrays (NaN where there is no value).
The reader checks ``valid_until`` against its own clock as well as relying on the TTL, so a
result is never served past its validity (TTLs are the server's clock).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import structlog
from redis.asyncio import Redis

from quanticity.observability.analytics_metrics import AnalyticsMetrics
from quanticity.schemas import utc_now
from quanticity.schemas.columns import ColumnarPayloadError, decode_columnar, is_columnar

log = structlog.get_logger(__name__)


def greeks_key(symbol: str, expiry: str) -> str:
    """Key of one expiry's Greeks document."""
    return f"analytics:greeks:{symbol}:{expiry}"


def greeks_summary_key(symbol: str) -> str:
    """Key of an underlying's Greeks summary."""
    return f"analytics:greeks:{symbol}"


def result_key(kind: str, symbol: str | None = None) -> str:
    """Key of a kernel's latest result: per symbol (``analytics:vpin:SPY``) or global (``analytics:regime``)."""
    return f"analytics:{kind}:{symbol}" if symbol else f"analytics:{kind}"


def log_key(kind: str) -> str:
    """Key of a kernel's change log (a list, newest first)."""
    return f"analytics:{kind}:log"


@dataclass(frozen=True)
class ResultWrite:
    """One document to store.

    Attributes:
        key: the key without the deployment prefix.
        module: the kernel (metric label).
        document: the encoded document (JSON, or columnar for a chain's Greeks); must hold ``valid_until``.
        valid_until: when the result stops being valid (the TTL runs to it).
    """

    key: str
    module: str
    document: bytes
    valid_until: datetime


@dataclass(frozen=True)
class StoredResult:
    """A fresh result read back."""

    key: str
    document: dict[str, Any]
    computed_at: datetime
    valid_until: datetime


def decode_result(raw: bytes, key: str) -> dict[str, Any]:
    """A stored document as a mapping: JSON as it is; a columnar one (a chain's Greeks) with its
    float64 columns and its ``text_columns`` together under ``"columns"``.

    Raises:
        ValueError: the value at ``key`` is neither a JSON object nor a well-formed columnar document.
    """
    if is_columnar(raw):
        try:
            fields = decode_columnar(raw).fields
        except ColumnarPayloadError as exc:
            raise ValueError(f"{key} holds a broken columnar document: {exc}") from None
        text = fields.pop("text_columns", {})
        if not isinstance(text, dict):
            raise ValueError(f"{key}: text_columns is a {type(text).__name__}, not an object")
        arrays = {name: value for name, value in fields.items() if isinstance(value, np.ndarray)}
        document = {name: value for name, value in fields.items() if name not in arrays}
        document["columns"] = {**arrays, **text}
        return document
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{key} does not hold JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ValueError(f"{key} holds JSON that is not an object")
    return document


def freshness(document: dict[str, Any], now: datetime) -> tuple[datetime, datetime, bool]:
    """``(computed_at, valid_until, fresh)`` of a stored document.

    Raises:
        ValueError: the document has no valid ``computed_at``/``valid_until``.
    """
    try:
        computed_at = datetime.fromisoformat(document["computed_at"])
        until = datetime.fromisoformat(document["valid_until"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"document has no computed_at/valid_until: {exc}") from None
    if until.tzinfo is None or computed_at.tzinfo is None:
        raise ValueError("computed_at/valid_until must carry a timezone")
    return computed_at, until, now < until


class AnalyticsStore:
    """Writes and reads analytics results.

    Args:
        redis: an asyncio client.
        metrics: the analytics metrics (stale refusals are counted there).
        key_prefix: the deployment's key namespace.
        clock: the reader's and writer's notion of now.
    """

    def __init__(
        self,
        redis: Redis,
        metrics: AnalyticsMetrics,
        key_prefix: str = "",
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.redis = redis
        self.metrics = metrics
        self.prefix = key_prefix
        self.clock = clock

    async def write(self, writes: Sequence[ResultWrite]) -> list[ResultWrite]:
        """Store documents with a TTL running to their ``valid_until``, in one round trip.

        A document already past its validity is not stored: it is counted in
        ``analytics_stale_results_total{module}`` and left out of the returned list.

        Returns:
            the writes that were stored.

        Raises:
            redis.exceptions.RedisError: Redis is unreachable.
        """
        now = self.clock()
        stored: list[ResultWrite] = []
        async with self.redis.pipeline(transaction=True) as pipe:
            for write in writes:
                ttl_ms = int((write.valid_until - now).total_seconds() * 1000)
                if ttl_ms <= 0:
                    self.metrics.stale_results.labels(module=write.module).inc()
                    log.info(
                        "analytics_result_stale_not_stored", key=write.key, valid_until=write.valid_until.isoformat()
                    )
                    continue
                pipe.set(self.prefix + write.key, write.document, px=ttl_ms)
                stored.append(write)
            if stored:
                await pipe.execute()
        return stored

    async def read(self, key: str, module: str) -> StoredResult | None:
        """The result at ``key`` if it exists and is still valid.

        A result past ``valid_until`` (the TTL not yet run out, or clocks apart) is refused:
        None, counted in ``analytics_stale_results_total{module}``.

        Raises:
            ValueError: the stored value is not an analytics document.
            redis.exceptions.RedisError: Redis is unreachable.
        """
        raw = await self.redis.get(self.prefix + key)
        if raw is None:
            return None
        document = decode_result(raw.encode() if isinstance(raw, str) else raw, key)
        computed_at, until, fresh = freshness(document, self.clock())
        if not fresh:
            self.metrics.stale_results.labels(module=module).inc()
            log.info("analytics_result_stale_refused", key=key, valid_until=until.isoformat())
            return None
        return StoredResult(key, document, computed_at, until)

    async def greeks(self, symbol: str, expiry: str) -> StoredResult | None:
        """The fresh Greeks document of one expiry, else None."""
        return await self.read(greeks_key(symbol, expiry), "greeks")

    async def greeks_summary(self, symbol: str) -> StoredResult | None:
        """The fresh Greeks summary of an underlying, else None."""
        return await self.read(greeks_summary_key(symbol), "greeks")

    async def result(self, kind: str, symbol: str | None = None) -> StoredResult | None:
        """The fresh latest result of another kernel (``vpin``, ``regime``…), else None."""
        return await self.read(result_key(kind, symbol), kind)

    async def append_log(self, kind: str, entry: dict[str, Any], max_length: int) -> None:
        """Push one entry on a change log, newest first, keeping ``max_length`` entries.

        Raises:
            redis.exceptions.RedisError: Redis is unreachable.
        """
        key = self.prefix + log_key(kind)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(key, orjson.dumps(entry))
            pipe.ltrim(key, 0, max_length - 1)
            await pipe.execute()

    async def change_log(self, kind: str, count: int = 100) -> list[dict[str, Any]]:
        """The newest ``count`` entries of a change log.

        Raises:
            redis.exceptions.RedisError: Redis is unreachable.
        """
        raw = await self.redis.lrange(self.prefix + log_key(kind), 0, count - 1)
        return [orjson.loads(item) for item in raw]
