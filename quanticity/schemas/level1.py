"""Level-1 records per contract: option quotes with model greeks, and closing-auction state."""

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
