"""The position model: contracts, positions on IB's conventions, fills, and the comparison with the broker.

Pure logic (no Redis, no TWS) that :mod:`quanticity.execution.position_store` drives: a
:class:`Position` folds fills into a signed quantity, an average cost per unit with the
multiplier and commissions folded in, and the realized P&L net of the closing share of the
commission, as IB reports them, so the two sides compare directly; :func:`compare` tells
mismatches (quantities differ) from drifts (costs differ) and fills still settling.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from quanticity.errors import QuanticityError

_ZERO: Final = Decimal(0)
# The broker's average cost travels as a float: differences below this are representation noise.
_COST_TOLERANCE = Decimal("0.0001")


class PositionStoreError(QuanticityError):
    """A snapshot, archive file or ledger entry the position store cannot use."""


def as_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_decimal(value: Any, what: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise PositionStoreError(f"{what}: {value!r} is not a number") from None
    if not number.is_finite():
        raise PositionStoreError(f"{what}: {value!r} is not a finite number")
    return number


def plain(number: Decimal) -> str:
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
        return cls(symbol.upper(), kind, expiry_text, parse_decimal(strike, f"{symbol} strike").normalize(), right_text)

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
        return f"{self.symbol}:{self.sec_type}:{self.expiry}:{plain(self.strike)}:{self.right}"

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
            "strike": None if self.strike is None else plain(self.strike),
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
                parse_decimal(doc["avg_cost"], f"{where} avg_cost"),
                parse_decimal(doc["realized_pnl"], f"{where} realized_pnl"),
                parse_decimal(doc.get("commissions", "0"), f"{where} commissions"),
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
