"""Market-data records: underlying quotes, option chain snapshots, ticks, bars, depth."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from quanticity.schemas.base import SymbolRecord
from quanticity.schemas.columns import ColumnarMixin, FloatColumn, empty_column, float_column

Right = Literal["C", "P"]


class UnderlyingQuote(SymbolRecord):
    """Level-1 quote of an underlying (stock, ETF or index)."""

    type: Literal["underlying_quote"] = "underlying_quote"
    bid: float | None = Field(default=None, ge=0)
    ask: float | None = Field(default=None, ge=0)
    last: float | None = Field(default=None, ge=0)
    bid_size: float | None = Field(default=None, ge=0)
    ask_size: float | None = Field(default=None, ge=0)
    volume: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _check_prices(self) -> UnderlyingQuote:
        if self.bid is None and self.ask is None and self.last is None:
            raise ValueError("a quote needs at least one of bid, ask, last")
        if self.bid is not None and self.ask is not None and self.bid > self.ask:
            raise ValueError(f"crossed quote: bid {self.bid} > ask {self.ask}")
        return self

    @property
    def mid(self) -> float | None:
        """Midpoint of bid and ask, when both are present."""
        if self.bid is None or self.ask is None:
            return None
        return (self.bid + self.ask) / 2.0


_CHAIN_COLUMNS = (
    "bid",
    "ask",
    "last",
    "volume",
    "open_interest",
    "implied_vol",
    "delta",
    "gamma",
    "theta",
    "vega",
    "rho",
)
#: Columns a source may not send at all: empty, or one entry per row.
_OPTIONAL_COLUMNS = ("contract_id", "mark", "bid_size", "ask_size", "row_flags")
_REQUIRED_COLUMNS = ("strike", "right", *_CHAIN_COLUMNS)
_COLUMN_NAMES = frozenset((*_REQUIRED_COLUMNS, *_OPTIONAL_COLUMNS))
#: The float64 columns (``NaN`` = absent), in wire order.
CHAIN_FLOAT_COLUMNS = ("strike", *_CHAIN_COLUMNS[:5], "mark", "bid_size", "ask_size", *_CHAIN_COLUMNS[5:])


class OptionChainSnapshot(ColumnarMixin, SymbolRecord):
    """One underlying + expiry of an option chain, in columnar form (one row per contract).

    Columns are parallel and of equal length. The number columns (``CHAIN_FLOAT_COLUMNS``)
    are read-only float64 numpy arrays in which ``NaN`` marks a value the source did not
    provide (a list of numbers and ``None`` is accepted and converted; in JSON they are
    lists with ``null``); ``right``, ``contract_id`` and ``row_flags`` are lists.
    ``contract_id``, ``mark``, ``bid_size``, ``ask_size`` and ``row_flags`` may also be
    empty as a whole: the source does not send that column (``row_flags``: no row is
    flagged). One message per underlying and expiry keeps a 10k-contract chain to a few
    messages rather than 10k (ARCHITECTURE.md §6); on the topic it travels in the binary
    columnar form of ``schemas/columns.py``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)
    FLOAT_COLUMNS: ClassVar[tuple[str, ...]] = CHAIN_FLOAT_COLUMNS

    type: Literal["option_chain"] = "option_chain"
    expiry: date
    underlying_price: float | None = Field(default=None, ge=0)
    strike: FloatColumn
    right: list[Right]
    contract_id: list[str | None] = Field(default_factory=list, description="the source's contract id per row")
    bid: FloatColumn
    ask: FloatColumn
    last: FloatColumn
    mark: FloatColumn = Field(default_factory=empty_column, description="the source's own mark per row")
    bid_size: FloatColumn = Field(default_factory=empty_column)
    ask_size: FloatColumn = Field(default_factory=empty_column)
    volume: FloatColumn
    open_interest: FloatColumn
    implied_vol: FloatColumn
    delta: FloatColumn
    gamma: FloatColumn
    theta: FloatColumn
    vega: FloatColumn
    rho: FloatColumn
    flags: list[str] = Field(
        default_factory=list, description="data-quality flags for the whole snapshot (stale, partial…)"
    )
    row_flags: list[list[str]] = Field(
        default_factory=list,
        description="per row, what the normalizer withheld or doubts (junk_greeks:…, bad_bid, stale…)",
    )

    @model_validator(mode="after")
    def _check_columns(self) -> OptionChainSnapshot:
        _check_lengths(self.__dict__)
        if np.isinf(self.strike).any() or not (self.strike > 0).all():
            raise ValueError("strike must be positive and finite in every row")
        return self

    def __eq__(self, other: object) -> bool:
        return self.columns_equal(other)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> OptionChainSnapshot:
        """A copy with ``update`` applied; number columns in ``update`` become float64 arrays
        (pydantic's ``model_copy`` validates nothing, and a list would break every reader)."""
        return super().model_copy(update=_as_columns(update) if update else update, deep=deep)

    __hash__ = None  # type: ignore[assignment]  # arrays: equal snapshots need not hash alike

    @property
    def rows(self) -> int:
        """How many contracts the snapshot holds."""
        return int(self.strike.shape[0])

    def flags_of(self, row: int) -> list[str]:
        """The flags of one row (none when the snapshot flags no row)."""
        return self.row_flags[row] if self.row_flags else []

    @classmethod
    def from_typed_columns(cls, columns: Mapping[str, Any], **fields: Any) -> OptionChainSnapshot:
        """A snapshot from columns whose cell types the caller guarantees; only their shape is checked.

        The normalizer builds its columns from parsed floats and Arrow float64/string arrays,
        so validating them cell by cell would only re-check types it made itself. Number
        columns may be arrays (used as they are when read-only, copied when the caller could
        still write them) or lists of floats and ``None``. The
        envelope and every other field are validated as usual, the columns' names and
        lengths too. Its tests check that such snapshots validate unchanged through the model.

        Raises:
            pydantic.ValidationError: a field other than the columns is invalid.
            ValueError: an unknown column, or columns of unequal length.
        """
        unknown = set(columns) - _COLUMN_NAMES
        if unknown:
            raise ValueError(f"not chain columns: {sorted(unknown)}")
        shell = cls.model_validate({**fields, **_EMPTY_REQUIRED})
        typed = _as_columns(columns)
        _check_lengths({**shell.__dict__, **typed})
        return BaseModel.model_copy(shell, update=typed)  # columns converted above


#: The required columns of ``from_typed_columns``' shell, empty: read-only arrays pass the
#: column validator as they are (a list would be converted).
_EMPTY_REQUIRED: dict[str, Any] = {
    name: empty_column() if name in CHAIN_FLOAT_COLUMNS else () for name in _REQUIRED_COLUMNS
}


def _as_columns(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with every number column as a read-only float64 array (``float_column``)."""
    return {name: float_column(value) if name in CHAIN_FLOAT_COLUMNS else value for name, value in values.items()}


def _check_lengths(values: Mapping[str, Any]) -> None:
    rows = len(values["strike"])
    if len(values["right"]) != rows:
        raise ValueError(f"column right has {len(values['right'])} rows, strike has {rows}")
    for name in _CHAIN_COLUMNS:
        n = len(values[name])
        if n != rows:
            raise ValueError(f"column {name} has {n} rows, strike has {rows}")
    for name in _OPTIONAL_COLUMNS:
        n = len(values[name])
        if n not in (0, rows):
            raise ValueError(f"column {name} has {n} rows, strike has {rows} (and it is not empty)")


class Tick(SymbolRecord):
    """A tick-by-tick trade or bid/ask change."""

    type: Literal["tick"] = "tick"
    kind: Literal["trade", "bid_ask"]
    price: float | None = Field(default=None, ge=0)
    size: float | None = Field(default=None, ge=0)
    bid: float | None = Field(default=None, ge=0)
    ask: float | None = Field(default=None, ge=0)
    exchange: str | None = None


class Bar(SymbolRecord):
    """An OHLCV bar of ``interval_s`` seconds starting at ``event_time``."""

    type: Literal["bar"] = "bar"
    interval_s: int = Field(gt=0)
    open: float = Field(ge=0)
    high: float = Field(ge=0)
    low: float = Field(ge=0)
    close: float = Field(ge=0)
    volume: float = Field(ge=0)

    @model_validator(mode="after")
    def _check_range(self) -> Bar:
        if not self.low <= min(self.open, self.close) <= max(self.open, self.close) <= self.high:
            raise ValueError("bar must satisfy low <= open, close <= high")
        return self


class DepthLevel(BaseModel):
    """One price level of an order book side."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    price: float = Field(ge=0)
    size: float = Field(ge=0)
    market_maker: str | None = None


class DepthSnapshot(SymbolRecord):
    """An L2 order book snapshot of one venue: best levels first on each side."""

    type: Literal["depth_snapshot"] = "depth_snapshot"
    venue: str = Field(min_length=1)
    bids: list[DepthLevel] = Field(max_length=50)
    asks: list[DepthLevel] = Field(max_length=50)
