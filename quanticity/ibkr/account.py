"""Account state from TWS → Redis: values hash, positions, and P&L time series.

- ``account:{acct}``: a hash of ``TAG:CURRENCY`` → value (``reqAccountUpdates``);
- ``positions:{acct}``: a hash of conId → JSON (symbol, secType, expiry, strike, right,
  position, average cost);
- ``account:pnl:{daily|unrealized|realized}``: TimeSeries from ``reqPnL`` (48 h raw, 1 m/5 m
  compactions); ``account:pnl_single:{acct}``: a hash of conId → JSON from ``reqPnLSingle``.

ib_insync's callbacks are synchronous, so updates go through a queue to one writer task
that retries Redis failures with backoff (logged and counted), keeping the newest value.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from typing import Any, Final

import orjson
import structlog
from ib_insync import IB
from redis.exceptions import RedisError

from quanticity.ibkr.connection_manager import IbkrConnection
from quanticity.ibkr.metrics import IbkrMetrics
from quanticity.storage.redis_timeseries import PRICE_LADDER, SeriesSpec, TimeSeriesWriter

log = structlog.get_logger(__name__)

GAUGE_TAGS: Final = frozenset(
    {
        "NetLiquidation",
        "TotalCashValue",
        "BuyingPower",
        "AvailableFunds",
        "ExcessLiquidity",
        "UnrealizedPnL",
        "RealizedPnL",
        "GrossPositionValue",
        "MaintMarginReq",
    }
)
PNL_RETENTION_MS: Final = 48 * 3_600_000
_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class AccountMonitor:
    """Mirrors the account's values, positions and P&L into Redis.

    Args:
        conn: the role's supervised connection.
        writer: the TimeSeries writer (its client and key prefix serve the hashes too).
        metrics: IBKR metrics (account gauges, error counter).
        account: the account to follow; ``None`` = the first managed account.
    """

    def __init__(
        self, conn: IbkrConnection, writer: TimeSeriesWriter, metrics: IbkrMetrics, account: str | None = None
    ) -> None:
        self.conn = conn
        self.writer = writer
        self.metrics = metrics
        self.account = account
        self._pending: dict[tuple[str, str], Any] = {}
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._listening = False
        self._pnl_single: set[int] = set()
        self._series_ready = False

    async def start(self) -> None:
        """Subscribe (restored after reconnects) and start the Redis writer (idempotent: a call
        after a start cut short by a lost connection adds nothing twice)."""
        ib = self.conn.ib
        if not self._listening:
            ib.accountValueEvent += self._on_value
            ib.pnlEvent += self._on_pnl
            ib.pnlSingleEvent += self._on_pnl_single
            ib.positionEvent += self._on_position
            self._listening = True
        await self.conn.add_subscription("account", self._restore)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_forever(), name="ibkr-account-writer")

    async def stop(self) -> None:
        """Stop the writer (pending updates are written first when Redis answers)."""
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    def _account(self, ib: IB) -> str:
        if self.account:
            return self.account
        accounts = ib.managedAccounts()
        return accounts[0] if accounts else ""

    async def _restore(self, ib: IB) -> None:
        account = self._account(ib)
        if not account:
            log.error("ibkr_no_managed_account", action="set ibkr.account in config/ibkr.yaml")
            return
        self.account = account
        # A fresh session (reconnect) has no P&L subscriptions; a restore on a live one
        # (1101) still has them, and ib_insync refuses a second request for the same key.
        self._pnl_single.clear()
        if (account, "") not in ib.wrapper.pnlKey2ReqId:
            ib.reqPnL(account)
        for value in ib.accountValues(account):
            self._on_value(value)
        for position in ib.positions(account):
            self._on_position(position)  # requests each position's P&L once

    def _request_pnl_single(self, ib: IB, con_id: int) -> None:
        if con_id and con_id not in self._pnl_single and self.account:
            self._pnl_single.add(con_id)
            if (self.account, "", con_id) not in ib.wrapper.pnlSingleKey2ReqId:
                ib.reqPnLSingle(self.account, "", con_id)

    def _queue(self, kind: str, key: str, value: Any) -> None:
        self._pending[(kind, key)] = value  # newest wins
        self._wake.set()

    def _on_value(self, value: Any) -> None:
        if self.account and value.account != self.account:
            return
        self._queue("value", f"{value.tag}:{value.currency}", value.value)
        number = _finite(value.value)
        if value.tag in GAUGE_TAGS and value.currency in ("USD", "BASE") and number is not None:
            self.metrics.account_value.labels(value.tag).set(number)

    def _on_position(self, position: Any) -> None:
        if self.account and position.account != self.account:
            return
        c = position.contract
        doc = {
            "symbol": c.symbol,
            "sec_type": c.secType,
            "expiry": c.lastTradeDateOrContractMonth or None,
            "strike": c.strike or None,
            "right": c.right or None,
            "position": float(position.position),
            "avg_cost": float(position.avgCost),
            "updated": time.time(),
        }
        self._queue("position", str(c.conId), doc)
        if position.position:
            self._request_pnl_single(self.conn.ib, c.conId)

    def _on_pnl(self, pnl: Any) -> None:
        for kind, value in (("daily", pnl.dailyPnL), ("unrealized", pnl.unrealizedPnL), ("realized", pnl.realizedPnL)):
            number = _finite(value)
            if number is not None:
                self.metrics.pnl.labels(kind).set(number)
                self._queue("pnl", kind, (int(time.time() * 1000), number))

    def _on_pnl_single(self, pnl: Any) -> None:
        doc = {
            "position": _finite(pnl.position),
            "daily": _finite(pnl.dailyPnL),
            "unrealized": _finite(pnl.unrealizedPnL),
            "realized": _finite(pnl.realizedPnL),
            "value": _finite(pnl.value),
            "updated": time.time(),
        }
        self._queue("pnl_single", str(pnl.conId), doc)

    async def _ensure_series(self) -> None:
        if self._series_ready:
            return
        await self.writer.ensure_series(
            [
                SeriesSpec(
                    f"account:pnl:{kind}",
                    {"family": "account_pnl", "field": kind, "source": "ibkr"},
                    PNL_RETENTION_MS,
                    PRICE_LADDER,
                )
                for kind in ("daily", "unrealized", "realized")
            ]
        )
        self._series_ready = True

    async def _write(self, batch: dict[tuple[str, str], Any]) -> None:
        acct = self.account or "unknown"
        await self._ensure_series()
        full = self.writer.full_key
        samples: list[tuple[str, int, float]] = []
        async with self.writer.redis.pipeline(transaction=False) as pipe:
            for (kind, key), value in batch.items():
                if kind == "value":
                    pipe.hset(full(f"account:{acct}"), key, str(value))
                elif kind == "position":
                    pipe.hset(full(f"positions:{acct}"), key, orjson.dumps(value))
                elif kind == "pnl_single":
                    pipe.hset(full(f"account:pnl_single:{acct}"), key, orjson.dumps(value))
                else:
                    ts, number = value
                    samples.append((f"account:pnl:{key}", ts, number))
            await pipe.execute()
        if samples:
            await self.writer.madd(samples, family="account")

    async def _write_forever(self) -> None:
        attempt = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, {}
            try:
                await self._write(batch)
                attempt = 0
            except RedisError as exc:
                for item, value in batch.items():
                    self._pending.setdefault(item, value)  # keep what failed unless a newer value came
                delay = _BACKOFF_S[min(attempt, len(_BACKOFF_S) - 1)]
                attempt += 1
                self.metrics.error_events.labels("account_store").inc()
                log.error("ibkr_account_store_failed_retrying", error=str(exc), retry_in_s=delay, updates=len(batch))
                await asyncio.sleep(delay)
                self._wake.set()
