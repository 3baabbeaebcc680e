"""Positions from our own fills, reconciled with the broker's view, snapshotted and archived.

The order ledger (:mod:`quanticity.storage.ibkr_events`) records every execution of our
orders in the day streams ``fills:{YYYYMMDD}``. :class:`PositionStore` folds them, in the
order they reached the ledger, into one :class:`Position` per account and contract: signed
quantity, average cost and realized P&L on IB's conventions (average cost per unit with the
multiplier and the commissions folded in, realized P&L net of the closing share of the
commission), so the two sides compare directly.

Redis keys (under the key prefix):

- ``fills:{YYYYMMDD}:commissions``: exec id → commission. TWS reports a commission after its
  execution (``commissionReport``); each reconciliation copies them from the session's fills.
  A fill is folded in once its commission is known, or ``commission_wait_s`` after it reached
  the ledger (then without one, logged and counted); until then it counts for quantities only.
- ``positions:snapshot:{acct}``: a hash rewritten after each reconciliation: one JSON field
  per contract, ``_meta`` (time, stream cursor) and ``_reconcile`` (the last result). The
  contract documents say ``quantity``, not ``position``: the analytics book reads every
  ``positions:*`` hash as the broker mirror and skips entries without a ``position``.

Parquet: ``positions-{YYYYMMDD}.parquet`` beside the ledger's audit export, the day's latest
snapshot of every account with the cursor in the schema metadata.

After a restart the book comes back from the Redis snapshots, else the newest Parquet file,
else empty; then every fill after its cursor is folded in from the ledger.

A reconciliation compares the book with the broker's positions (``ib.positions()`` of the
role's own session, or the ``positions:{acct}`` hash the account monitor writes). A contract
whose quantities differ in two passes ``settle_s`` apart (a fill in flight is no
discrepancy) is a mismatch: logged at WARNING with both quantities, counted in
``ibkr_position_mismatches`` and stored with the snapshot.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Protocol

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import structlog
from ib_insync import IB
from redis.asyncio import Redis

from quanticity.execution.positions import (
    BrokerPosition,
    ContractKey,
    LedgerFill,
    Position,
    PositionBook,
    PositionStoreError,
    Reconciliation,
    as_text,
    compare,
    parse_decimal,
    ready_fills,
)
from quanticity.ibkr.metrics import IbkrMetrics
from quanticity.storage.archive import sha256_of
from quanticity.storage.ibkr_events import OrderLedger

log = structlog.get_logger(__name__)

SCHEMA_VERSION: Final = 1
META_FIELD: Final = "_meta"
RECONCILE_FIELD: Final = "_reconcile"
PARQUET_META_KEY: Final = b"quanticity.positions"
_DAY_STREAM = re.compile(r"fills:(\d{8})$")
_PARQUET_NAME = re.compile(r"positions-(\d{8})\.parquet$")
_PAGE = 1000
_ORDER_CACHE_LIMIT = 10_000


# --------------------------------------------------------------------------- broker views
class BrokerPositions(Protocol):
    """The broker's view of an account."""

    async def positions(self, account: str) -> list[BrokerPosition]:
        """Every non-flat position of ``account``."""

    def commissions(self) -> list[tuple[str, Decimal, datetime]]:
        """``(exec id, commission, execution time)`` of the executions the session knows."""


class IbPositions:
    """The broker's view through the role's own ``ib_insync`` session (kept current by TWS)."""

    def __init__(self, ib: IB) -> None:
        self.ib = ib

    async def positions(self, account: str) -> list[BrokerPosition]:
        where = f"{account} position"
        return [
            BrokerPosition(
                account,
                ContractKey.from_contract(p.contract),
                parse_decimal(p.position, where),
                parse_decimal(p.avgCost, where),
            )
            for p in self.ib.positions(account)
            if p.position
        ]

    def commissions(self) -> list[tuple[str, Decimal, datetime]]:
        out = []
        for fill in self.ib.fills():
            report = fill.commissionReport
            # ib_insync attaches an empty report (commission 0) until TWS sends the real one, and
            # TWS uses 1.797e308 for "unset": neither is a commission.
            if report is not None and report.execId and 0 < report.commission < 1e9:
                # The execution's own time names the day, as it does for the ledger's fill stream.
                t = fill.execution.time
                when = t if t.tzinfo else t.replace(tzinfo=UTC)
                out.append((report.execId, Decimal(str(round(report.commission, 6))), when))
        return out


class RedisPositionsMirror:
    """The broker's view as :class:`~quanticity.ibkr.account.AccountMonitor` mirrors it (``positions:{acct}``)."""

    def __init__(self, redis: Redis, key_prefix: str = "") -> None:
        self.redis = redis
        self.prefix = key_prefix

    async def positions(self, account: str) -> list[BrokerPosition]:
        key = f"{self.prefix}positions:{account}"
        out = []
        for con_id, raw in (await self.redis.hgetall(key)).items():
            where = f"{key} {as_text(con_id)}"
            try:
                doc = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise PositionStoreError(f"{where}: not JSON: {exc}") from None
            if not isinstance(doc, dict) or not doc.get("position"):
                continue
            try:
                contract = ContractKey.of(
                    doc.get("symbol", ""), doc.get("sec_type"), doc.get("expiry"), doc.get("strike"), doc.get("right")
                )
            except PositionStoreError as exc:
                raise PositionStoreError(f"{where}: {exc.message}") from None
            out.append(
                BrokerPosition(
                    account,
                    contract,
                    parse_decimal(doc["position"], f"{where} position"),
                    parse_decimal(doc.get("avg_cost", 0), f"{where} avg_cost"),
                )
            )
        return out

    def commissions(self) -> list[tuple[str, Decimal, datetime]]:
        return []  # the mirror has no executions


# --------------------------------------------------------------------------- the store
@dataclass(frozen=True)
class _OrderInfo:
    account: str
    key: ContractKey
    sign: int


class PositionStore:
    """Positions from the ledger's fills, reconciled with the broker, snapshotted to Redis and Parquet.

    Args:
        ledger: the order ledger (its Redis client and key prefix serve the store too).
        metrics: IBKR metrics (mismatch gauge, reconciliation counter, error counter).
        directory: where the daily ``positions-{YYYYMMDD}.parquet`` goes (the ledger's audit export).
        settle_s: a quantity difference must still be there this long after to be a mismatch.
        commission_wait_s: how long a fill waits for its commission before folding in without one.
        clock: the current UTC time (tests pass their own).
    """

    def __init__(
        self,
        ledger: OrderLedger,
        metrics: IbkrMetrics,
        directory: Path,
        *,
        settle_s: float = 2.0,
        commission_wait_s: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.ledger = ledger
        self.redis = ledger.redis
        self.prefix = ledger.prefix
        self.metrics = metrics
        self.directory = directory
        self.settle_s = settle_s
        self.commission_wait_s = commission_wait_s
        self.clock = clock
        self.book = PositionBook()
        self.default_account: str | None = None
        self.last: dict[str, Reconciliation] = {}
        self.pending: list[LedgerFill] = []
        self._orders: dict[str, _OrderInfo | None] = {}
        self._parquet_digest: str | None = None

    def _k(self, key: str) -> str:
        return self.prefix + key

    def _account(self, account: str | None) -> str:
        chosen = account or self.default_account
        if not chosen:
            raise PositionStoreError(
                "no account to reconcile: the position store has not been loaded",
                operator_action="set ibkr.account in config/ibkr.yaml or check that TWS reports a managed account",
            )
        return chosen

    def positions(self, account: str | None = None) -> dict[ContractKey, Position]:
        """The positions of ``account`` (default: the loaded account)."""
        return self.book.of(self._account(account))

    # ------------------------------------------------------------------ restart
    async def load(self, default_account: str) -> str:
        """Rebuild the book after a (re)start; returns where it came from: redis, parquet or ledger.

        Fills of orders without an account belong to ``default_account``. The Redis snapshots
        win, then the newest Parquet file; an unusable one is logged, counted and skipped.
        Every fill after the restored cursor is then folded in from the ledger.
        """
        self.default_account = default_account
        source, book = "ledger", None
        try:
            book = await self._from_redis()
            source = "redis"
        except PositionStoreError as exc:
            self.metrics.error_events.labels("positions_snapshot").inc()
            log.error("positions_snapshot_unusable", error=exc.message, action="rebuilding from the archive")
        if book is None:
            try:
                book = await asyncio.to_thread(self._from_parquet)
                source = "parquet"
            except (PositionStoreError, OSError, pa.ArrowException) as exc:
                self.metrics.error_events.labels("positions_archive").inc()
                log.error("positions_archive_unusable", error=str(exc), action="rebuilding from the ledger")
        if book is None:
            book, source = PositionBook(), "ledger"
        self.book = book
        self.pending = []
        folded = await self.sync(full=True)
        log.info(
            "positions_loaded",
            source=source,
            fills_folded=folded,
            accounts=len(self.book.positions),
            open_positions=sum(1 for held in self.book.positions.values() for p in held.values() if p.quantity),
        )
        return source

    async def _from_redis(self) -> PositionBook | None:
        book = PositionBook()
        cursors: dict[str, dict[str, str]] = {}
        async for raw_key in self.redis.scan_iter(match=self._k("positions:snapshot:*"), count=100):
            key = as_text(raw_key)
            account = key[len(self._k("positions:snapshot:")) :]
            fields = {as_text(f): v for f, v in (await self.redis.hgetall(key)).items()}
            if META_FIELD not in fields:
                raise PositionStoreError(f"{key}: no {META_FIELD} field")
            try:
                meta = orjson.loads(fields.pop(META_FIELD))
                cursors[account] = {str(d): str(e) for d, e in dict(meta["cursor"]).items()}
                fields.pop(RECONCILE_FIELD, None)
                held = {}
                for name, value in fields.items():
                    position = Position.from_doc(orjson.loads(value), f"{key} {name}")
                    held[position.key] = position
            except (KeyError, TypeError, ValueError) as exc:
                raise PositionStoreError(f"{key}: malformed snapshot: {exc!r}") from None
            book.positions[account] = held
        if not cursors:
            return None
        distinct = {tuple(sorted(c.items())) for c in cursors.values()}
        if len(distinct) > 1:
            raise PositionStoreError(f"the snapshots of {sorted(cursors)} were taken at different ledger positions")
        book.cursor = next(iter(cursors.values()))
        return book

    def _newest_parquet(self) -> Path | None:
        if not self.directory.is_dir():
            return None
        files = sorted(p for p in self.directory.iterdir() if _PARQUET_NAME.fullmatch(p.name))
        return files[-1] if files else None

    def _from_parquet(self) -> PositionBook | None:
        path = self._newest_parquet()
        if path is None:
            return None
        table = pq.read_table(path)
        metadata = table.schema.metadata or {}
        if PARQUET_META_KEY not in metadata:
            raise PositionStoreError(f"{path}: no {PARQUET_META_KEY.decode()} schema metadata")
        try:
            meta = orjson.loads(metadata[PARQUET_META_KEY])
            cursor = {str(d): str(e) for d, e in dict(meta["cursor"]).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise PositionStoreError(f"{path}: malformed metadata: {exc!r}") from None
        book = PositionBook(cursor=cursor)
        for i, row in enumerate(table.to_pylist()):
            position = Position.from_doc(row, f"{path} row {i}")
            book.positions.setdefault(str(row["account"]), {})[position.key] = position
        for account in meta.get("accounts", []):
            book.positions.setdefault(str(account), {})
        log.info("positions_archive_read", path=str(path), rows=table.num_rows)
        return book

    # ------------------------------------------------------------------ folding fills in
    async def _stream_days(self) -> list[str]:
        days = set()
        async for raw_key in self.redis.scan_iter(match=self._k("fills:*"), count=1000):
            match = _DAY_STREAM.fullmatch(as_text(raw_key)[len(self.prefix) :])
            if match:
                days.add(match.group(1))
        return sorted(days)

    def _recent_days(self) -> list[str]:
        today = self.clock().date()
        days = {f"{today - timedelta(days=1):%Y%m%d}", f"{today:%Y%m%d}"} | {f.day for f in self.pending}
        return sorted(days)

    async def _order(self, order_id: str) -> _OrderInfo | None:
        if order_id in self._orders:
            return self._orders[order_id]
        order = await self.ledger.load(order_id)
        info: _OrderInfo | None = None
        if order:
            try:
                key = ContractKey.from_order(order)
            except PositionStoreError as exc:
                raise PositionStoreError(f"order {order_id}: {exc.message}") from None
            info = _OrderInfo(order.get("account") or self._account(None), key, 1 if order.get("side") == "buy" else -1)
        if len(self._orders) >= _ORDER_CACHE_LIMIT:
            self._orders.clear()
        self._orders[order_id] = info
        return info

    async def _read_day(self, day: str) -> list[LedgerFill]:
        stream = self._k(f"fills:{day}")
        last = self.book.cursor.get(day)
        start = f"({last}" if last else "-"
        rows: list[tuple[str, dict[str, str]]] = []
        while True:
            page = await self.redis.xrange(stream, min=start, max="+", count=_PAGE) or []
            rows += [(as_text(i), {as_text(k): as_text(v) for k, v in (f or {}).items()}) for i, f in page]
            if len(page) < _PAGE:
                break
            start = f"({rows[-1][0]}"
        if not rows:
            return []
        commissions = {
            as_text(k): as_text(v) for k, v in (await self.redis.hgetall(self._k(f"fills:{day}:commissions"))).items()
        }
        out = []
        for entry_id, entry in rows:
            where = f"{stream} {entry_id}"
            info = await self._order(entry.get("order_id", ""))
            if info is None:
                # A fill of an order the ledger no longer has: it cannot be attributed. The
                # reconciliation will show the broker's side of it.
                self.metrics.error_events.labels("position_orphan_fill").inc()
                log.error("position_orphan_fill", stream=stream, entry=entry_id, order_id=entry.get("order_id"))
                out.append(LedgerFill(day, entry_id, "", "", "", ContractKey("?"), 0, Decimal(1), Decimal(0), False))
                continue
            exec_id = entry.get("exec_id", "")
            fee_text = entry.get("commission") or commissions.get(exec_id)
            out.append(
                LedgerFill(
                    day,
                    entry_id,
                    exec_id,
                    entry.get("order_id", ""),
                    info.account,
                    info.key,
                    info.sign * int(parse_decimal(entry.get("quantity"), f"{where} quantity")),
                    parse_decimal(entry.get("price"), f"{where} price"),
                    parse_decimal(fee_text, f"{where} commission") if fee_text else None,
                )
            )
        return out

    async def sync(self, *, full: bool = False) -> int:
        """Fold in the ledger's new fills; returns how many. ``full`` reads every day stream.

        Raises:
            PositionStoreError: a fill or its order is malformed (nothing is folded in then).
            redis.exceptions.RedisError: Redis does not answer.
        """
        days = await self._stream_days() if full else self._recent_days()
        fills: list[LedgerFill] = []
        for day in days:
            fills += await self._read_day(day)
        fills.sort(key=lambda f: f.sort_key)
        now = self.clock()
        ready, self.pending = ready_fills(fills, now, self.commission_wait_s)
        folded = 0
        for fill in ready:
            if fill.attributable and fill.commission is None:
                self.metrics.error_events.labels("commission_missing").inc()
                log.warning(
                    "position_fill_without_commission",
                    exec_id=fill.exec_id,
                    order_id=fill.order_id,
                    contract=fill.key.text,
                    waited_s=round((now - fill.arrived).total_seconds(), 1),
                )
            if self.book.apply(fill) is not None:
                folded += 1
        self.book.positions.setdefault(self._account(None), {})
        return folded

    async def record_commissions(self, items: Iterable[tuple[str, Decimal, datetime]]) -> int:
        """Store commissions by exec id (``fills:{day}:commissions``); returns how many were given."""
        by_day: dict[str, dict[str, str]] = {}
        for exec_id, commission, when in items:
            by_day.setdefault(f"{when.astimezone(UTC):%Y%m%d}", {})[exec_id] = str(commission)
        if not by_day:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for day, mapping in by_day.items():
                pipe.hset(self._k(f"fills:{day}:commissions"), mapping=mapping)  # type: ignore[arg-type]
            await pipe.execute()
        return sum(len(m) for m in by_day.values())

    # ------------------------------------------------------------------ reconciliation
    async def _compare(self, broker: BrokerPositions, account: str) -> Reconciliation:
        await self.record_commissions(broker.commissions())
        await self.sync()
        theirs = await broker.positions(account)
        return compare(account, self.book.of(account), theirs, self.clock(), self.pending)

    async def reconcile(self, broker: BrokerPositions, account: str | None = None) -> Reconciliation:
        """Compare the book of ``account`` (default: the loaded one) with ``broker``, then snapshot.

        Raises:
            PositionStoreError: the store was not loaded, or the ledger holds a malformed fill.
            redis.exceptions.RedisError: Redis does not answer.
            OSError: the Parquet snapshot could not be written.
        """
        account = self._account(account)
        result = await self._compare(broker, account)
        if result.mismatches and self.settle_s > 0:
            await asyncio.sleep(self.settle_s)  # a fill in flight reaches both sides by then
            again = await self._compare(broker, account)
            seen = {d.contract for d in result.mismatches}
            result = replace(again, mismatches=tuple(d for d in again.mismatches if d.contract in seen))
        self.last[account] = result
        self.metrics.position_mismatches.set(sum(len(r.mismatches) for r in self.last.values()))
        self.metrics.position_reconciliations.labels("ok" if result.ok else "mismatch").inc()
        for diff in result.mismatches:
            log.warning(
                "position_mismatch",
                account=account,
                contract=diff.contract,
                ledger_quantity=diff.ledger_quantity,
                broker_quantity=str(diff.broker_quantity),
                difference=str(diff.difference),
                action="check the account for orders placed outside the platform, or fills the ledger missed",
            )
        for diff in result.cost_drifts:
            log.info(
                "position_cost_drift",
                account=account,
                contract=diff.contract,
                ledger_avg_cost=str(diff.ledger_avg_cost),
                broker_avg_cost=str(diff.broker_avg_cost),
            )
        if result.ok:
            log.info("positions_reconciled", account=account, contracts=result.contracts, pending=result.pending_fills)
        await self.snapshot()
        return result

    # ------------------------------------------------------------------ snapshots
    def _accounts(self) -> list[str]:
        return sorted(set(self.book.positions) | ({self.default_account} if self.default_account else set()))

    async def snapshot(self) -> Path | None:
        """Write ``positions:snapshot:{acct}`` for every account and the day's Parquet file.

        Returns the Parquet path when it was (re)written, None when nothing changed since.
        """
        taken = self.clock()
        meta = {
            "schema_version": SCHEMA_VERSION,
            "taken_at": taken.timestamp(),
            "taken_at_iso": taken.isoformat(),
            "cursor": self.book.cursor,
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            for account in self._accounts():
                key = self._k(f"positions:snapshot:{account}")
                mapping: dict[str | bytes, bytes] = {META_FIELD: orjson.dumps({**meta, "account": account})}
                for position in self.book.of(account).values():
                    mapping[position.key.text] = orjson.dumps(position.doc())
                if account in self.last:
                    mapping[RECONCILE_FIELD] = orjson.dumps(self.last[account], default=str)  # decimals as text
                pipe.delete(key)
                pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
            await pipe.execute()
        rows = [
            {"account": account, **position.doc()}
            for account in self._accounts()
            for position in sorted(self.book.of(account).values(), key=lambda p: p.key)
        ]
        cursor = dict(self.book.cursor)
        digest = hashlib.sha256(
            orjson.dumps([f"{taken:%Y%m%d}", rows, cursor], option=orjson.OPT_SORT_KEYS)
        ).hexdigest()
        if digest == self._parquet_digest:
            return None
        path = await asyncio.to_thread(self._write_parquet, taken, rows, cursor, self._accounts())
        self._parquet_digest = digest
        return path

    def _write_parquet(
        self, taken: datetime, rows: list[dict[str, Any]], cursor: dict[str, str], accounts: list[str]
    ) -> Path:
        day = f"{taken:%Y%m%d}"
        columns = ["account", "symbol", "sec_type", "expiry", "strike", "right", "multiplier", "quantity"]
        columns += ["avg_cost", "realized_pnl", "commissions", "fills"]
        integer = {"multiplier", "quantity", "fills"}
        table = pa.table(
            {c: pa.array([r[c] for r in rows], type=pa.int64() if c in integer else pa.string()) for c in columns}
        )
        table = table.append_column("taken_at", pa.array([taken] * len(rows), type=pa.timestamp("ms", tz="UTC")))
        meta = {"schema_version": SCHEMA_VERSION, "taken_at": taken.isoformat(), "cursor": cursor, "accounts": accounts}
        table = table.replace_schema_metadata({PARQUET_META_KEY: orjson.dumps(meta)})
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / f"positions-{day}.parquet"
        staging = target.with_suffix(".parquet.tmp")
        pq.write_table(table, staging, compression="zstd")
        staging.replace(target)  # a reader never sees half a file
        log.info("positions_archived", path=str(target), rows=len(rows), sha256=sha256_of(target))
        return target
