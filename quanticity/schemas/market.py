"""Market-data records: underlying quotes, option chain snapshots, ticks, bars, depth."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from quanticity.schemas.base import SymbolRecord

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


class OptionChainSnapshot(SymbolRecord):
    """One underlying + expiry of an option chain, in columnar form (one row per contract).

    Columns are parallel lists of equal length; ``None`` marks a value the source did not
    provide. One message per underlying and expiry keeps a 10k-contract chain to a few
    messages rather than 10k (ARCHITECTURE.md §6).
    """

    type: Literal["option_chain"] = "option_chain"
    expiry: date
    underlying_price: float | None = Field(default=None, ge=0)
    strike: list[float]
    right: list[Right]
    bid: list[float | None]
    ask: list[float | None]
    last: list[float | None]
    volume: list[float | None]
    open_interest: list[float | None]
    implied_vol: list[float | None]
    delta: list[float | None]
    gamma: list[float | None]
    theta: list[float | None]
    vega: list[float | None]
    rho: list[float | None]
    flags: list[str] = Field(
        default_factory=list, description="data-quality flags for the whole snapshot (stale, partial…)"
    )

    @model_validator(mode="after")
    def _check_columns(self) -> OptionChainSnapshot:
        rows = len(self.strike)
        if len(self.right) != rows:
            raise ValueError(f"column right has {len(self.right)} rows, strike has {rows}")
        for name in _CHAIN_COLUMNS:
            n = len(getattr(self, name))
            if n != rows:
                raise ValueError(f"column {name} has {n} rows, strike has {rows}")
        return self


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
