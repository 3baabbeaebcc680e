"""Typed records for every topic (pydantic v2) and the wire codec."""

from __future__ import annotations

from quanticity.schemas.base import Record, Source, SymbolRecord, stable_id, utc_now
from quanticity.schemas.level1 import AuctionState, OptionQuote, OptionQuoteBatch
from quanticity.schemas.market import (
    Bar,
    DepthLevel,
    DepthSnapshot,
    OptionChainSnapshot,
    Tick,
    UnderlyingQuote,
)
from quanticity.schemas.reference import IndicatorSeries, MacroSeries, NewsItem, TickerSentiment
from quanticity.schemas.trading import (
    AnalyticsResult,
    DeadLetter,
    Fill,
    OrderEvent,
    Signal,
    SocialMessage,
)

__all__ = [
    "AnalyticsResult",
    "AuctionState",
    "Bar",
    "DeadLetter",
    "DepthLevel",
    "DepthSnapshot",
    "Fill",
    "IndicatorSeries",
    "MacroSeries",
    "NewsItem",
    "OptionChainSnapshot",
    "OptionQuote",
    "OptionQuoteBatch",
    "OrderEvent",
    "Record",
    "Signal",
    "SocialMessage",
    "Source",
    "SymbolRecord",
    "Tick",
    "TickerSentiment",
    "UnderlyingQuote",
    "stable_id",
    "utc_now",
]
