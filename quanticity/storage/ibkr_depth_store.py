"""Depth snapshots → Redis: the last book per symbol and venue, with a TTL refreshed on each one.

Key: ``ibkr:depth:{symbol}:{venue}`` (a JSON document: event time, venue, best levels per
side). The TTL makes a venue that left the rotation (or a dead feed) vanish instead of
looking current; a reader also gets the event time to judge freshness itself.
"""

from __future__ import annotations

from datetime import UTC

import orjson
from redis.asyncio import Redis

from quanticity.schemas import DepthSnapshot


def _utc_text(snapshot: DepthSnapshot) -> str:
    # One zone for every stored time, so text order is time order.
    return snapshot.event_time.astimezone(UTC).isoformat()


def depth_key(symbol: str, venue: str) -> str:
    """Key of the last depth snapshot of ``symbol`` on ``venue``."""
    return f"ibkr:depth:{symbol}:{venue}"


def snapshot_document(snapshot: DepthSnapshot) -> bytes:
    """The stored JSON: compact level arrays, best first."""
    return orjson.dumps(
        {
            "symbol": snapshot.symbol,
            "venue": snapshot.venue,
            "event_time": _utc_text(snapshot),
            "record_id": snapshot.record_id,
            "bids": [[lvl.price, lvl.size, lvl.market_maker] for lvl in snapshot.bids],
            "asks": [[lvl.price, lvl.size, lvl.market_maker] for lvl in snapshot.asks],
        }
    )


class DepthStore:
    """Keeps the last snapshot per symbol/venue.

    Args:
        redis: asyncio client.
        ttl_s: expiry of each snapshot key, refreshed on every write.
        key_prefix: the Redis settings' key prefix.
    """

    def __init__(self, redis: Redis, ttl_s: int, key_prefix: str = "") -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.key_prefix = key_prefix

    async def store(self, snapshot: DepthSnapshot) -> None:
        """Replace the symbol/venue's snapshot (newer event time wins; an older one is ignored).

        Raises:
            redis.exceptions.RedisError: Redis is unreachable.
        """
        key = self.key_prefix + depth_key(snapshot.symbol, snapshot.venue)
        current = await self.redis.get(key)
        if current is not None:
            stored_time = orjson.loads(current).get("event_time", "")
            if stored_time > _utc_text(snapshot):
                return  # a late snapshot after a newer one: the newer book stays
        await self.redis.set(key, snapshot_document(snapshot), ex=self.ttl_s)

    async def load(self, symbol: str, venue: str) -> dict[str, object] | None:
        """The stored snapshot as a dict, or ``None`` when absent or expired."""
        raw = await self.redis.get(self.key_prefix + depth_key(symbol, venue))
        return None if raw is None else dict(orjson.loads(raw))
