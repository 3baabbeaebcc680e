"""Settings of the AlphaVantage cadence matrix: buckets, watchlists, quotas, sources.

Read from ``config/alpha_vantage.yaml`` (section ``alphavantage``) and
``config/watchlists.yaml`` (section ``watchlists``) through the normal settings layers.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ExpirySelection = Literal["all", "0dte", "1dte", "0dte_1dte"]


class BucketSettings(BaseModel):
    """One row of the cadence matrix.

    Attributes:
        function: the AlphaVantage function, or ``INDICATORS`` for the round-robin of
            ``indicators`` (one indicator per symbol per ``every_s``).
        watchlists: names of the watchlists whose symbols the bucket covers.
        every_s: how often each symbol is refreshed.
        rotate: spread the symbols' calls evenly over ``every_s`` (or ``spread_s``) instead of
            bursting.
        params: extra query parameters (strings, as AlphaVantage takes them).
        expirations: options only: which expirations to ask for (one call per expiration).
        exclude_etfs: skip symbols listed in the ``etfs`` watchlist (news).
        window: ``market`` (04:00–20:00 ET on weekdays), ``always``, or ``night`` (20:30 ET
            daily, for backfills outside the hot path).
        enabled: off switch (per-environment overrides use it).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    function: str = Field(min_length=1)
    watchlists: list[str] = Field(default_factory=list)
    every_s: float = Field(gt=0)
    rotate: bool = True
    spread_s: float | None = Field(
        default=None, gt=0, description="rotation spreads calls over this long (default every_s)"
    )
    params: dict[str, str] = Field(default_factory=dict)
    expirations: ExpirySelection = "all"
    exclude_etfs: bool = False
    window: Literal["market", "always", "night"] = "market"
    enabled: bool = True

    @field_validator("function")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


class AlternateSource(BaseModel):
    """A (function, symbol) pair AlphaVantage cannot serve, and who serves it instead."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    function: str
    symbol: str
    served_by: Literal["ibkr", "derived", "none"]
    reason: str


class CadenceSettings(BaseModel):
    """The whole ingestion plan."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    plan_calls_per_min: int = Field(default=600, gt=0, description="the subscribed plan's quota")
    ceiling_calls_per_min: int = Field(default=480, gt=0, description="our own global ceiling (8/s)")
    per_function_qps: float = Field(default=8.0, gt=0)
    max_concurrency: int = Field(default=8, ge=1, le=64)
    indicators: list[str] = Field(default_factory=list)
    indicator_interval: str = "1min"
    indicator_time_period: int = Field(default=14, gt=0)
    macro_functions: list[str] = Field(default_factory=list)
    macro_treasury_maturities: list[str] = Field(default_factory=lambda: ["3month", "2year", "10year", "30year"])
    buckets: dict[str, BucketSettings] = Field(default_factory=dict)
    alternate_sources: list[AlternateSource] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_ceiling(self) -> CadenceSettings:
        if self.ceiling_calls_per_min > self.plan_calls_per_min:
            raise ValueError(
                f"ceiling_calls_per_min {self.ceiling_calls_per_min} exceeds the plan's "
                f"{self.plan_calls_per_min} calls/min"
            )
        return self
