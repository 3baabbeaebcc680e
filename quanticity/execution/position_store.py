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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final, Protocol

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import structlog
from ib_insync import IB
from redis.asyncio import Redis

from quanticity.errors import QuanticityError
from quanticity.ibkr.metrics import IbkrMetrics
from quanticity.storage.archive import sha256_of
from quanticity.storage.ibkr_events import OrderLedger

log = structlog.get_logger(__name__)

SCHEMA_VERSION: Final = 1
META_FIELD: Final = "_meta"
RECONCILE_FIELD: Final = "_reconcile"
PARQUET_META_KEY: Final = b"quanticity.positions"
_ZERO: Final = Decimal(0)
_DAY_STREAM = re.compile(r"fills:(\d{8})$")
_PARQUET_NAME = re.compile(r"positions-(\d{8})\.parquet$")
_PAGE = 1000
_ORDER_CACHE_LIMIT = 10_000
# The broker's average cost travels as a float: differences below this are representation noise.
_COST_TOLERANCE = Decimal("0.0001")


class PositionStoreError(QuanticityError):
    """A snapshot, archive file or ledger entry the position store cannot use."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decimal(value: Any, what: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise PositionStoreError(f"{what}: {value!r} is not a number") from None
    if not number.is_finite():
        raise PositionStoreError(f"{what}: {value!r} is not a finite number")
    return number


def _plain(number: Decimal) -> str:
    """``Decimal`` → text without exponent or trailing zeros (``450``, ``452.5``)."""
    text = f"{number.normalize():f}"
    return "0" if text in ("-0", "") else text


# --------------------------------------------------------------------------- contracts
@dataclass(frozen=True, order=True)
class ContractKey:
    """What a position is held in, the same whichever side (ledger or broker) names it.

    Attributes:
        symbol: the underlying symbol (``SPX`` for SPXW options too).
        sec_type: ``STK``, ``OPT``…
        expiry: ``YYYYMMDD`` for options, else None.
        strike: the strike for options, else None.
        right: ``C`` or ``P`` for options, else None.
    """

    symbol: str
    sec_type: str = "STK"
    expiry: str | None = None
    strike: Decimal | None = None
    right: str | None = None

    @classmethod
    def of(
        cls, symbol: str, sec_type: str | None, expiry: Any = None, strike: Any = None, right: Any = None
    ) -> ContractKey:
        """A normalized key; option fields are dropped for non-options.

        Raises:
            PositionStoreError: no symbol, or an option without expiry, strike or right.
        """
        kind = (sec_type or "STK").upper()
        if not symbol:
            raise PositionStoreError(f"a {kind} contract without a symbol")
        if kind not in ("OPT", "FOP"):
            return cls(symbol.upper(), kind)
        expiry_text = str(expiry or "").replace("-", "")[:8]
        right_text = str(right or "")[:1].upper()
        if len(expiry_text) != 8 or not strike or right_text not in ("C", "P"):
            raise PositionStoreError(
                f"option {symbol}: needs expiry, strike and right, got {expiry!r}, {strike!r}, {right!r}"
            )
        return cls(symbol.upper(), kind, expiry_text, _decimal(strike, f"{symbol} strike").normalize(), right_text)

    @classmethod
    def from_contract(cls, contract: Any) -> ContractKey:
        """The key of an ``ib_insync`` contract (a position's or an execution's)."""
        return cls.of(
            contract.symbol, contract.secType, contract.lastTradeDateOrContractMonth, contract.strike, contract.right
        )

    @classmethod
    def from_order(cls, order: Mapping[str, str]) -> ContractKey:
        """The key of an ``orders:{id}`` hash (symbol, sec_type, expiry ISO date, strike, right)."""
        return cls.of(
            order.get("symbol", ""), order.get("sec_type"), order.get("expiry"), order.get("strike"), order.get("right")
        )

    @property
    def text(self) -> str:
        """``SPY:STK`` or ``SPX:OPT:20260116:5000:C``: the field name in snapshots and logs."""
        if self.strike is None:
            return f"{self.symbol}:{self.sec_type}"
        return f"{self.symbol}:{self.sec_type}:{self.expiry}:{_plain(self.strike)}:{self.right}"

    @property
    def multiplier(self) -> Decimal:
        """Units per contract: 100 for equity and index options, 1 otherwise."""
        return Decimal(100) if self.sec_type == "OPT" else Decimal(1)

    def fields(self) -> dict[str, str | None]:
        """The key as plain JSON fields."""
        return {
            "symbol": self.symbol,
            "sec_type": self.sec_type,
            "expiry": self.expiry,
            "strike": None if self.strike is None else _plain(self.strike),
            "right": self.right,
        }


# --------------------------------------------------------------------------- position math
@dataclass(frozen=True)
class Position:
    """One account's holding of one contract, on IB's conventions.

    Attributes:
        quantity: signed (short < 0).
        avg_cost: per unit, multiplier included, commissions folded in (added for a long,
            subtracted for a short); 0 when flat.
        realized_pnl: closed P&L net of the commissions of the closing part.
        commissions: every commission paid on this contract.
        fills: executions folded in.
    """

    key: ContractKey
    quantity: int = 0
    avg_cost: Decimal = _ZERO
    realized_pnl: Decimal = _ZERO
    commissions: Decimal = _ZERO
    fills: int = 0

    def apply(self, quantity: int, price: Decimal, commission: Decimal = _ZERO) -> Position:
        """The position after one execution of ``quantity`` (+ bought, - sold) at ``price``.

        Raises:
            ValueError: a zero quantity, a non-positive price or a negative commission.
        """
        if quantity == 0:
            raise ValueError(f"{self.key.text}: an execution of zero quantity")
        if price <= 0:
            raise ValueError(f"{self.key.text}: execution price must be positive, got {price}")
        if commission < 0:
            raise ValueError(f"{self.key.text}: commission must not be negative, got {commission}")
        unit = price * self.key.multiplier
        held, traded = self.quantity, quantity
        after = held + traded
        avg, realized = self.avg_cost, self.realized_pnl
        if held == 0 or (held > 0) == (traded > 0):  # opening or adding
            cost = abs(held) * avg + abs(traded) * unit + (commission if after > 0 else -commission)
            avg = cost / abs(after)
        else:  # reducing, closing, or through zero
            closed = min(abs(traded), abs(held))
            fee_closed = commission * closed / abs(traded)
            realized += closed * ((unit - avg) if held > 0 else (avg - unit)) - fee_closed
            if abs(traded) > abs(held):
                rest = abs(traded) - closed
                avg = unit + (commission - fee_closed) / rest * (1 if after > 0 else -1)
            elif after == 0:
                avg = _ZERO
        return replace(
            self,
            quantity=after,
            avg_cost=avg,
            realized_pnl=realized,
            commissions=self.commissions + commission,
            fills=self.fills + 1,
        )

    def doc(self) -> dict[str, Any]:
        """JSON fields (decimals as exact text)."""
        return {
            **self.key.fields(),
            "multiplier": int(self.key.multiplier),
            "quantity": self.quantity,
            "avg_cost": str(self.avg_cost),
            "realized_pnl": str(self.realized_pnl),
            "commissions": str(self.commissions),
            "fills": self.fills,
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any], where: str) -> Position:
        """The inverse of :meth:`doc`.

        Raises:
            PositionStoreError: a field is missing or malformed (``where`` names the source).
        """
        try:
            key = ContractKey.of(
                doc["symbol"], doc.get("sec_type"), doc.get("expiry"), doc.get("strike"), doc.get("right")
            )
            return cls(
                key,
                int(doc["quantity"]),
                _decimal(doc["avg_cost"], f"{where} avg_cost"),
                _decimal(doc["realized_pnl"], f"{where} realized_pnl"),
                _decimal(doc.get("commissions", "0"), f"{where} commissions"),
                int(doc.get("fills", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PositionStoreError(f"{where}: malformed position document: {exc!r}") from None


def _entry_order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True)
class LedgerFill:
    """One execution from a ``fills:{day}`` stream, resolved against its order.

    Attributes:
        day: the stream's ``YYYYMMDD``.
        entry_id: the stream entry id (when the ledger recorded it).
        quantity: signed (+ bought, - sold).
        commission: None while TWS has not reported it.
        attributable: False for a fill whose order the ledger no longer has; it only moves
            the cursor (the reconciliation shows the broker's side of it).
    """

    day: str
    entry_id: str
    exec_id: str
    order_id: str
    account: str
    key: ContractKey
    quantity: int
    price: Decimal
    commission: Decimal | None
    attributable: bool = True

    @property
    def sort_key(self) -> tuple[int, int]:
        """Arrival order: entry ids of every day stream come from the one Redis clock."""
        return _entry_order(self.entry_id)

    @property
    def arrived(self) -> datetime:
        """When the ledger recorded the fill."""
        return datetime.fromtimestamp(self.sort_key[0] / 1000.0, UTC)


def ready_fills(
    fills: Sequence[LedgerFill], now: datetime, commission_wait_s: float
) -> tuple[list[LedgerFill], list[LedgerFill]]:
    """Split fills (in arrival order) into those to fold in now and those awaiting a commission.

    Folding stops at the first fill whose commission is unknown and that arrived less than
    ``commission_wait_s`` ago: positions are order-dependent, so later fills wait behind it.
    """
    for i, fill in enumerate(fills):
        if fill.commission is None and (now - fill.arrived).total_seconds() < commission_wait_s:
            return list(fills[:i]), list(fills[i:])
    return list(fills), []


@dataclass
class PositionBook:
    """Positions per account and contract, and how far each fill stream has been folded in.

    Attributes:
        positions: account → contract → position (flat ones stay, with their realized P&L).
        cursor: ``YYYYMMDD`` → the last stream entry id folded in from that day's stream.
    """

    positions: dict[str, dict[ContractKey, Position]] = field(default_factory=dict)
    cursor: dict[str, str] = field(default_factory=dict)

    def apply(self, fill: LedgerFill) -> Position | None:
        """Fold ``fill`` in (an unknown commission counts as 0) and move the cursor past it.

        Returns the position after it, or None for an unattributable fill (cursor only).
        """
        last = self.cursor.get(fill.day)
        if last is None or _entry_order(fill.entry_id) > _entry_order(last):
            self.cursor[fill.day] = fill.entry_id
        if not fill.attributable:
            return None
        held = self.positions.setdefault(fill.account, {})
        before = held.get(fill.key, Position(fill.key))
        after = before.apply(fill.quantity, fill.price, fill.commission or _ZERO)
        held[fill.key] = after
        return after

    def of(self, account: str) -> dict[ContractKey, Position]:
        """The positions of ``account`` (empty when it has none)."""
        return dict(self.positions.get(account, {}))


# --------------------------------------------------------------------------- reconciliation
@dataclass(frozen=True)
class BrokerPosition:
    """A position as the broker reports it."""

    account: str
    key: ContractKey
    quantity: Decimal
    avg_cost: Decimal


@dataclass(frozen=True)
class ContractDiff:
    """One contract on which the ledger and the broker disagree."""

    account: str
    contract: str
    ledger_quantity: int
    broker_quantity: Decimal
    ledger_avg_cost: Decimal
    broker_avg_cost: Decimal

    @property
    def difference(self) -> Decimal:
        """Ledger minus broker quantity."""
        return Decimal(self.ledger_quantity) - self.broker_quantity


@dataclass(frozen=True)
class Reconciliation:
    """The outcome of comparing one account's book with the broker.

    Attributes:
        contracts: contracts held on either side.
        mismatches: contracts whose quantities differ.
        cost_drifts: contracts with equal quantities whose average costs differ.
        pending_fills: fills counted in the quantities that await their commission.
    """

    account: str
    at: datetime
    contracts: int
    mismatches: tuple[ContractDiff, ...]
    cost_drifts: tuple[ContractDiff, ...] = ()
    pending_fills: int = 0

    @property
    def ok(self) -> bool:
        """No quantity mismatch."""
        return not self.mismatches


def compare(
    account: str,
    book: Mapping[ContractKey, Position],
    broker: Iterable[BrokerPosition],
    at: datetime,
    pending: Iterable[LedgerFill] = (),
) -> Reconciliation:
    """Compare one account's book (plus fills awaiting their commission) with the broker's positions."""
    quantities = {key: position.quantity for key, position in book.items()}
    waiting = [f for f in pending if f.account == account and f.attributable]
    for fill in waiting:
        quantities[fill.key] = quantities.get(fill.key, 0) + fill.quantity
    theirs = {p.key: p for p in broker if p.account == account}
    mismatches: list[ContractDiff] = []
    drifts: list[ContractDiff] = []
    keys = {k for k, q in quantities.items() if q} | {k for k, p in theirs.items() if p.quantity}
    for key in sorted(keys):
        ours = quantities.get(key, 0)
        other = theirs.get(key)
        broker_qty = other.quantity if other is not None else _ZERO
        ledger_cost = book[key].avg_cost if key in book else _ZERO
        diff = ContractDiff(
            account, key.text, ours, broker_qty, ledger_cost, other.avg_cost if other is not None else _ZERO
        )
        if Decimal(ours) != broker_qty:
            mismatches.append(diff)
        elif all(f.key != key for f in waiting) and abs(diff.ledger_avg_cost - diff.broker_avg_cost) > max(
            _COST_TOLERANCE, abs(diff.broker_avg_cost) * Decimal("1e-6")
        ):
            drifts.append(diff)
    return Reconciliation(account, at, len(keys), tuple(mismatches), tuple(drifts), len(waiting))


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
                account, ContractKey.from_contract(p.contract), _decimal(p.position, where), _decimal(p.avgCost, where)
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
            where = f"{key} {_text(con_id)}"
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
                    _decimal(doc["position"], f"{where} position"),
                    _decimal(doc.get("avg_cost", 0), f"{where} avg_cost"),
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
            key = _text(raw_key)
            account = key[len(self._k("positions:snapshot:")) :]
            fields = {_text(f): v for f, v in (await self.redis.hgetall(key)).items()}
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
            match = _DAY_STREAM.fullmatch(_text(raw_key)[len(self.prefix) :])
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
            rows += [(_text(i), {_text(k): _text(v) for k, v in (f or {}).items()}) for i, f in page]
            if len(page) < _PAGE:
                break
            start = f"({rows[-1][0]}"
        if not rows:
            return []
        commissions = {
            _text(k): _text(v) for k, v in (await self.redis.hgetall(self._k(f"fills:{day}:commissions"))).items()
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
                out.append(LedgerFill(day, entry_id, "", "", "", ContractKey("?"), 0, Decimal(1), _ZERO, False))
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
                    info.sign * int(_decimal(entry.get("quantity"), f"{where} quantity")),
                    _decimal(entry.get("price"), f"{where} price"),
                    _decimal(fee_text, f"{where} commission") if fee_text else None,
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
