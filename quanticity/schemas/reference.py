"""Reference data records: technical indicators, macro observations, news items."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from quanticity.schemas.base import Record, SymbolRecord


class IndicatorSeries(SymbolRecord):
    """One technical-indicator reply: parallel columns, oldest first.

    ``values`` maps each value key of the indicator (``SMA``, ``MACD_Signal``, ``Real Upper
    Band``…) to a column aligned with ``timestamps``; ``None`` marks a gap.
    """

    type: Literal["indicator_series"] = "indicator_series"
    function: str = Field(min_length=1, description="SMA, MACD, BBANDS…")
    interval: str = Field(min_length=1)
    parameters: dict[str, str | int | float] = Field(default_factory=dict)
    timestamps: list[AwareDatetime]
    values: dict[str, list[float | None]]

    @model_validator(mode="after")
    def _check_columns(self) -> IndicatorSeries:
        rows = len(self.timestamps)
        for name, column in self.values.items():
            if len(column) != rows:
                raise ValueError(f"column {name} has {len(column)} rows, timestamps has {rows}")
        if any(b <= a for a, b in zip(self.timestamps, self.timestamps[1:], strict=False)):
            raise ValueError("timestamps must be strictly increasing (oldest first)")
        return self


class MacroSeries(Record):
    """One macro series reply (REAL_GDP, TREASURY_YIELD…): dates and values, oldest first.

    ``None`` marks a missing observation (AlphaVantage's ``"."``).
    """

    type: Literal["macro_series"] = "macro_series"
    function: str = Field(min_length=1)
    name: str
    interval: str
    unit: str
    parameters: dict[str, str] = Field(default_factory=dict, description="e.g. maturity for TREASURY_YIELD")
    dates: list[date]
    values: list[float | None]

    @model_validator(mode="after")
    def _check_columns(self) -> MacroSeries:
        if len(self.values) != len(self.dates):
            raise ValueError(f"values has {len(self.values)} rows, dates has {len(self.dates)}")
        if any(b <= a for a, b in zip(self.dates, self.dates[1:], strict=False)):
            raise ValueError("dates must be strictly increasing (oldest first)")
        return self

    @property
    def key(self) -> str:
        return self.function


class TickerSentiment(BaseModel):
    """How one article scores one ticker."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    ticker: str
    relevance_score: float = Field(ge=0, le=1)
    sentiment_score: float
    sentiment_label: str


class NewsItem(Record):
    """One NEWS_SENTIMENT feed article; ``record_id`` is derived from its URL."""

    type: Literal["news_item"] = "news_item"
    title: str
    url: str
    summary: str = ""
    source_name: str = ""
    topics: dict[str, float] = Field(default_factory=dict, description="topic → relevance score")
    overall_sentiment_score: float
    overall_sentiment_label: str
    tickers: list[TickerSentiment] = Field(default_factory=list)

    @property
    def key(self) -> str:
        return self.tickers[0].ticker if self.tickers else "news"
