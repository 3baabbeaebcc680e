"""The ingestion index: what data exists per symbol, how fresh it is, and the last good payload.

- ``index:{symbol}`` (hash): for each dataset (``quote``, ``options:{expiry}``, ``bars:60s``,
  ``indicator:{function}``…) the key pattern, latest event time, source and freshness
  (``fresh`` / ``stale`` / ``partial``).
- ``index:payload:{function}:{symbol}`` (string, 2-day TTL): the last payload that
  normalized cleanly, so a consumer can fail over to it while the source is throttled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

Freshness = Literal["fresh", "stale", "partial"]
_PAYLOAD_TTL_S = 2 * 24 * 3600


def index_key(symbol: str) -> str:
    return f"index:{symbol}"


def payload_key(function: str, symbol: str) -> str:
    return f"index:payload:{function}:{symbol}"


def freshness_of(flags: list[str]) -> Freshness:
    """A dataset's freshness from its record flags (``stale`` wins over ``partial``)."""
    if "stale" in flags:
        return "stale"
    if "partial" in flags:
        return "partial"
    return "fresh"


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One stored dataset of a symbol: the key pattern it lives under, its latest event time, source and freshness."""

    symbol: str
    dataset: str
    keys: str
    event_time: datetime
    source: str
    freshness: Freshness


class IngestionIndex:
    """Reads and writes the index (keys namespaced by ``key_prefix``)."""

    def __init__(self, redis: Redis, key_prefix: str = "") -> None:
        self.redis = redis
        self.prefix = key_prefix

    async def record(
        self, symbol: str, dataset: str, *, keys: str, event_time: datetime, source: str, freshness: Freshness
    ) -> None:
        """Note that ``dataset`` of ``symbol`` was stored."""
        await self.record_many([IndexEntry(symbol, dataset, keys, event_time, source, freshness)])

    async def record_many(self, entries: Sequence[IndexEntry]) -> None:
        """Note several stored datasets in one round trip (one ``HSET`` per symbol, later entries winning)."""
        mappings: dict[str, dict[FieldT, EncodableT]] = {}
        for entry in entries:
            mappings.setdefault(entry.symbol, {}).update(
                {
                    f"{entry.dataset}:keys": entry.keys,
                    f"{entry.dataset}:last_event_time": entry.event_time.isoformat(),
                    f"{entry.dataset}:source": entry.source,
                    f"{entry.dataset}:freshness": entry.freshness,
                }
            )
        if not mappings:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for symbol, mapping in mappings.items():
                pipe.hset(self.prefix + index_key(symbol), mapping=mapping)
            await pipe.execute()

    async def entries(self, symbol: str) -> dict[str, dict[str, str]]:
        """Every dataset of ``symbol``: ``{dataset: {keys, last_event_time, source, freshness}}``."""
        raw = await self.redis.hgetall(self.prefix + index_key(symbol))
        out: dict[str, dict[str, str]] = {}
        for field, value in raw.items():
            name = field.decode() if isinstance(field, bytes) else str(field)
            dataset, _, attribute = name.rpartition(":")
            out.setdefault(dataset, {})[attribute] = value.decode() if isinstance(value, bytes) else str(value)
        return out

    async def keep_payload(self, function: str, symbol: str, payload: bytes) -> None:
        """Cache the last good payload for failover."""
        await self.redis.set(self.prefix + payload_key(function, symbol), payload, ex=_PAYLOAD_TTL_S)

    async def last_payload(self, function: str, symbol: str) -> bytes | None:
        """The cached payload, if any."""
        value = await self.redis.get(self.prefix + payload_key(function, symbol))
        if value is None:
            return None
        return value if isinstance(value, bytes) else value.encode()
