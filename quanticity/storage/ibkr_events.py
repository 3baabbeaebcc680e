"""The order ledger in Redis: orders, idempotency tokens, fills, and a daily Parquet audit export.

Keys:

- ``orders:ref:{token}`` → our order id. Claimed with ``SET NX``: the first submission of a
  token wins, a resubmission finds the existing order (the idempotency guarantee).
- ``orders:{id}``: a hash of the order (symbol, side, quantity, limit, status, broker ids,
  filled quantity, average price, timestamps, the signal id, the status log).
- ``orders:{id}:execs``: the set of execution ids already applied (a fill replayed after a
  reconnect is not counted twice).
- ``orders:open``: the ids of orders not yet filled, cancelled or rejected (the order sync
  after a reconnect checks each one against what TWS knows).
- ``fills:{YYYYMMDD}``: a Stream of every fill of that day; ``orders:index:{YYYYMMDD}``: the
  order ids of that day. Both feed :func:`export_day` (orders and fills Parquet + sha256).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from redis.asyncio import Redis

_Field = bytes | bytearray | memoryview | str | int | float  # what redis-py accepts in a hash mapping


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class FillRecord:
    """One execution applied to an order."""

    exec_id: str
    order_id: str
    quantity: int
    price: Decimal
    time: datetime
    commission: Decimal | None = None


OPEN_ORDERS = "orders:open"
FINAL_STATUSES = frozenset({"filled", "cancelled", "rejected"})


class OrderLedger:
    """Orders and fills in Redis (durable with AOF on the embedded default).

    Args:
        redis: asyncio client.
        key_prefix: the Redis settings' key prefix.
    """

    def __init__(self, redis: Redis, key_prefix: str = "") -> None:
        self.redis = redis
        self.prefix = key_prefix

    def _k(self, key: str) -> str:
        return self.prefix + key

    async def claim(self, token: str, order_id: str, fields: Mapping[str, Any]) -> str | None:
        """Claim ``token`` for a new order. Returns ``None`` when claimed now, else the existing order id."""
        claimed = await self.redis.set(self._k(f"orders:ref:{token}"), order_id, nx=True)
        if not claimed:
            existing = await self.redis.get(self._k(f"orders:ref:{token}"))
            return _text(existing) if existing is not None else order_id
        now = datetime.now(UTC)
        mapping: dict[_Field, _Field] = {k: str(v) for k, v in fields.items() if v is not None}
        mapping.update({"order_id": order_id, "token": token, "created": now.isoformat(), "filled": "0"})
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._k(f"orders:{order_id}"), mapping=mapping)
            pipe.sadd(self._k(f"orders:index:{now:%Y%m%d}"), order_id)
            pipe.sadd(self._k(OPEN_ORDERS), order_id)
            await pipe.execute()
        return None

    async def update(self, order_id: str, **fields: Any) -> None:
        """Set fields of an order; a ``status`` change is appended to its status log."""
        mapping: dict[_Field, _Field] = {k: str(v) for k, v in fields.items() if v is not None}
        mapping["updated"] = datetime.now(UTC).isoformat()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._k(f"orders:{order_id}"), mapping=mapping)
            if "status" in fields:
                entry = orjson.dumps({"status": fields["status"], "at": str(mapping["updated"])})
                pipe.rpush(self._k(f"orders:{order_id}:log"), entry)
                if fields["status"] in FINAL_STATUSES:
                    pipe.srem(self._k(OPEN_ORDERS), order_id)
                else:
                    pipe.sadd(self._k(OPEN_ORDERS), order_id)
            await pipe.execute()

    async def open_orders(self) -> list[str]:
        """Ids of the orders not yet filled, cancelled or rejected (``orders:open``)."""
        return sorted(_text(v) for v in await self.redis.smembers(self._k(OPEN_ORDERS)))

    async def load(self, order_id: str) -> dict[str, str]:
        """The order's fields (empty when unknown)."""
        raw = await self.redis.hgetall(self._k(f"orders:{order_id}"))
        return {_text(k): _text(v) for k, v in raw.items()}

    async def order_for_token(self, token: str) -> str | None:
        """The order id holding ``token``, if any."""
        value = await self.redis.get(self._k(f"orders:ref:{token}"))
        return None if value is None else _text(value)

    async def status_log(self, order_id: str) -> list[dict[str, str]]:
        """Every status the order went through, in order."""
        return [orjson.loads(v) for v in await self.redis.lrange(self._k(f"orders:{order_id}:log"), 0, -1)]

    async def apply_fill(self, fill: FillRecord) -> bool:
        """Record ``fill`` once. Returns False when its exec id was applied already."""
        added = await self.redis.sadd(self._k(f"orders:{fill.order_id}:execs"), fill.exec_id)
        if not added:
            return False
        entry = {
            "exec_id": fill.exec_id,
            "order_id": fill.order_id,
            "quantity": str(fill.quantity),
            "price": str(fill.price),
            "time": fill.time.isoformat(),
            "commission": "" if fill.commission is None else str(fill.commission),
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self._k(f"fills:{fill.time:%Y%m%d}"), entry)  # type: ignore[arg-type]
            pipe.hincrby(self._k(f"orders:{fill.order_id}"), "filled", fill.quantity)
            await pipe.execute()
        return True

    async def fills_of(self, order_id: str, day: date) -> list[dict[str, str]]:
        """Fills of ``order_id`` in the day's fill stream."""
        rows = await self.redis.xrange(self._k(f"fills:{day:%Y%m%d}")) or []
        out = []
        for _, fields in rows:
            row = {_text(k): _text(v) for k, v in (fields or {}).items()}
            if row["order_id"] == order_id:
                out.append(row)
        return out

    async def export_day(self, day: date, directory: Path) -> dict[str, Any]:
        """Write the day's orders and fills as Parquet for audit; returns a manifest (rows, sha256)."""
        directory.mkdir(parents=True, exist_ok=True)
        ids = sorted(_text(i) for i in await self.redis.smembers(self._k(f"orders:index:{day:%Y%m%d}")))
        orders = [await self.load(i) for i in ids]
        fills = [
            {_text(k): _text(v) for k, v in (fields or {}).items()}
            for _, fields in await self.redis.xrange(self._k(f"fills:{day:%Y%m%d}")) or []
        ]
        manifest: dict[str, Any] = {"day": day.isoformat(), "written_at": time.time(), "files": {}}
        for name, rows in (("orders", orders), ("fills", fills)):
            columns = sorted({key for row in rows for key in row}) or ["order_id"]
            table = pa.table({c: [row.get(c) for row in rows] for c in columns})
            path = directory / f"{name}-{day:%Y%m%d}.parquet"
            pq.write_table(table, path)
            manifest["files"][path.name] = {
                "rows": table.num_rows,
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            }
        (directory / f"manifest-{day:%Y%m%d}.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
        return manifest
