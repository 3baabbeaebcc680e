"""Level-1 records: option quotes with model greeks (one contract, or a batch of one underlying), closing auction."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field, model_validator

from quanticity.schemas.base import SymbolRecord
from quanticity.schemas.market import Right


class OptionQuote(SymbolRecord):
    """L1 quote of one option contract, with the source's model greeks (IBKR ``tickOptionComputation``).

    ``symbol`` is the underlying; the contract is ``(expiry, strike, right)``.
    """

    type: Literal["option_quote"] = "option_quote"
    expiry: date
    strike: float = Field(gt=0)
    right: Right
    contract_id: int | None = Field(default=None, description="the venue's contract id (IBKR conId)")
    bid: float | None = Field(default=None, ge=0)
    ask: float | None = Field(default=None, ge=0)
    last: float | None = Field(default=None, ge=0)
    bid_size: float | None = Field(default=None, ge=0)
    ask_size: float | None = Field(default=None, ge=0)
    volume: float | None = Field(default=None, ge=0)
    open_interest: float | None = Field(default=None, ge=0)
    implied_vol: float | None = Field(default=None, ge=0)
    delta: float | None = None
    gamma: float | None = None
    vega: float | None = None
    theta: float | None = None
    underlying_price: float | None = Field(default=None, ge=0)
    delayed: bool = Field(default=False, description="true when served as delayed data (no live entitlement)")

    @model_validator(mode="after")
    def _check_quote(self) -> OptionQuote:
        if self.bid is not None and self.ask is not None and self.bid > self.ask:
            raise ValueError(f"crossed quote: bid {self.bid} > ask {self.ask}")
        return self

    @property
    def mid(self) -> float | None:
        """Midpoint of bid and ask, when both are present."""
        if self.bid is None or self.ask is None:
            return None
        return (self.bid + self.ask) / 2.0


#: Every column of :class:`OptionQuoteBatch`, in row order (the IBKR feed builds its rows in this order).
BATCH_COLUMNS = (
    "expiry",
    "strike",
    "right",
    "contract_id",
    "bid",
    "ask",
    "last",
    "bid_size",
    "ask_size",
    "volume",
    "open_interest",
    "implied_vol",
    "delta",
    "gamma",
    "vega",
    "theta",
    "underlying_price",
)
#: The value columns of :class:`OptionQuoteBatch` that must be >= 0 where present: all but the
#: contract's identity and the signed greeks.
BATCH_NON_NEGATIVE = tuple(
    name
    for name in BATCH_COLUMNS
    if name not in {"expiry", "strike", "right", "contract_id", "delta", "gamma", "vega", "theta"}
)


class OptionQuoteBatch(SymbolRecord):
    """L1 quotes and model greeks of several option contracts of one underlying, in columnar form.

    Row ``i`` across the columns is one :class:`OptionQuote`. The IBKR ingest role publishes
    the option lines of an underlying that changed in one socket read as one batch, so a
    busy chain costs one message per read instead of one per contract; ``event_time`` is
    the read's arrival (the same for every row, as ib_insync stamps it).
    """

    type: Literal["option_quote_batch"] = "option_quote_batch"
    expiry: list[date]
    strike: list[float]
    right: list[Right]
    contract_id: list[int | None]
    bid: list[float | None]
    ask: list[float | None]
    last: list[float | None]
    bid_size: list[float | None]
    ask_size: list[float | None]
    volume: list[float | None]
    open_interest: list[float | None]
    implied_vol: list[float | None]
    delta: list[float | None]
    gamma: list[float | None]
    vega: list[float | None]
    theta: list[float | None]
    underlying_price: list[float | None]
    delayed: bool = Field(default=False, description="true when any row is served as delayed data")

    @model_validator(mode="after")
    def _check_rows(self) -> OptionQuoteBatch:
        rows = len(self.strike)
        if rows == 0:
            raise ValueError("an option quote batch needs at least one row")
        for name in BATCH_COLUMNS:
            if len(getattr(self, name)) != rows:
                raise ValueError(f"column {name} has {len(getattr(self, name))} rows, strike has {rows}")
        if min(self.strike) <= 0:
            raise ValueError(f"row {self.strike.index(min(self.strike))}: strike must be > 0")
        for name in BATCH_NON_NEGATIVE:
            for i, value in enumerate(getattr(self, name)):
                if value is not None and value < 0:
                    raise ValueError(f"row {i}: {name} {value} is negative")
        for i, (bid, ask) in enumerate(zip(self.bid, self.ask, strict=True)):
            if bid is not None and ask is not None and bid > ask:
                raise ValueError(f"row {i}: crossed quote: bid {bid} > ask {ask}")
        return self

    def __len__(self) -> int:
        return len(self.strike)


class AuctionState(SymbolRecord):
    """Closing-auction fields of an underlying (IBKR generic tick 225), the MOC predictor's input.

    ``imbalance`` is signed: positive = buy-side imbalance, negative = sell-side.
    """

    type: Literal["auction_state"] = "auction_state"
    auction_volume: float | None = Field(default=None, ge=0, description="shares paired so far")
    auction_price: float | None = Field(default=None, ge=0, description="indicative clearing price")
    imbalance: float | None = Field(default=None, description="signed imbalance, shares")
    regulatory_imbalance: float | None = Field(default=None, description="signed regulatory imbalance, shares")
    last: float | None = Field(default=None, ge=0)
