"""Settings of the IBKR connection (config/ibkr.yaml → ``settings.ibkr``).

Kept next to the code that uses them; the settings root (quanticity/settings/model.py)
mounts :class:`IbkrSettings` as ``ibkr``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_SYMBOL_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.")
MarketDataType = Literal[1, 2, 3, 4]
OptionBucket = Literal["0dte", "1dte", "swing"]
_DEFAULT_BUCKETS: tuple[OptionBucket, ...] = ("0dte", "1dte")
_DEFAULT_DATA_TYPES: dict[str, MarketDataType] = {"live": 1, "paper": 1, "sim": 1, "replay": 4}


class _Section(BaseModel):
    # A typo in config/ibkr.yaml must fail loudly, not be ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _symbol(value: str) -> str:
    upper = value.strip().upper()
    if not upper or not set(upper) <= _SYMBOL_CHARS:
        raise ValueError(f"not a ticker symbol: {value!r}")
    return upper


class ClientIds(_Section):
    """TWS client ids per role: two processes may not share one (TWS answers 326)."""

    ingestion: int = Field(default=101, ge=0)
    execution: int = Field(default=201, ge=0)
    analytics: int = Field(default=301, ge=0)
    reporting: int = Field(default=401, ge=0)

    @model_validator(mode="after")
    def _distinct(self) -> ClientIds:
        ids = [self.ingestion, self.execution, self.analytics, self.reporting]
        if len(set(ids)) != len(ids):
            raise ValueError(f"client ids must differ per role, got {ids}")
        return self


class Pacing(_Section):
    """Request budgets shared by every process through Redis (TWS allows 50 messages/s).

    ``market_data_per_s`` also caps every request together. The default, 40, leaves room
    for heartbeats and cancels under TWS's 50 (see :mod:`quanticity.ibkr.pacing`).
    """

    market_data_per_s: float = Field(default=40.0, gt=0, le=50)
    orders_per_s: float = Field(default=5.0, gt=0, le=50)


class DepthVenue(_Section):
    """One explicit depth subscription: ``SYMBOL@EXCHANGE`` (never SMART)."""

    symbol: str
    exchange: str

    @classmethod
    def parse(cls, text: str) -> DepthVenue:
        """``"SPY@ARCA"`` → ``DepthVenue("SPY", "ARCA")``.

        Raises:
            ValueError: not ``SYMBOL@EXCHANGE``, or the exchange is SMART.
        """
        symbol, sep, exchange = text.partition("@")
        if not sep or not symbol.strip() or not exchange.strip():
            raise ValueError(f"depth venue {text!r}: expected SYMBOL@EXCHANGE, e.g. SPY@ARCA")
        if exchange.strip().upper() == "SMART":
            raise ValueError(f"depth venue {text!r}: market depth needs an explicit exchange, not SMART")
        return cls(symbol=_symbol(symbol), exchange=exchange.strip().upper())

    def __str__(self) -> str:
        return f"{self.symbol}@{self.exchange}"


class OptionSelection(_Section):
    """Which option contracts the ingest role streams (L1 with greeks)."""

    buckets: list[OptionBucket] = Field(default_factory=lambda: list(_DEFAULT_BUCKETS), min_length=1)
    strikes_each_side: int = Field(default=2, ge=0, le=50, description="strikes around ATM per side and expiry")
    swing_dte: tuple[int, int] = Field(default=(14, 45), description="DTE window of the swing bucket")
    generic_ticks: str = Field(default="100,101,104,106,233", description="option genericTickList")


class DepthSettings(_Section):
    """Rotating L2 subscriptions: TWS allows three at a time."""

    venues: list[str] = Field(
        default_factory=lambda: [
            "SPY@ARCA",
            "QQQ@ISLAND",
            "IWM@ARCA",
            "AAPL@ISLAND",
            "MSFT@ISLAND",
            "NVDA@ISLAND",
        ]
    )
    slots: int = Field(default=3, ge=1, le=3, description="simultaneous depth subscriptions (TWS: 3)")
    rows: int = Field(default=10, ge=1, le=50)
    dwell_s: float = Field(default=15.0, gt=0, le=3600, description="how long a venue keeps its slot")
    snapshot_interval_s: float = Field(default=1.0, gt=0, le=60, description="at most one snapshot per venue per")
    ttl_s: int = Field(default=180, ge=1, description="Redis TTL of the last snapshot, refreshed on each one")

    @field_validator("venues")
    @classmethod
    def _check_venues(cls, value: list[str]) -> list[str]:
        return [str(DepthVenue.parse(v)) for v in value]

    def parsed(self) -> list[DepthVenue]:
        """The venues as :class:`DepthVenue`."""
        return [DepthVenue.parse(v) for v in self.venues]


class TwsSimulatorSettings(_Section):
    """The local TWS-protocol simulator `quanticity up` starts in sim mode."""

    enabled: bool = True
    port: int = Field(default=0, ge=0, le=65535, description="0 = a free loopback port")
    seed: int = 7
    tick_interval_ms: int = Field(default=250, ge=10, le=60000)


class IbkrSettings(_Section):
    """Interactive Brokers through TWS / IB Gateway (``ib_insync``)."""

    enabled: bool = Field(default=True, description="run the IBKR roles (ingest-ibkr, execution) under `quanticity up`")
    host: str = "127.0.0.1"
    port: int = Field(default=7497, ge=1, le=65535, description="7497 paper TWS, 7496 live TWS, 4002 paper gateway")
    account: str | None = Field(default=None, description="unset = the only managed account")
    client_ids: ClientIds = Field(default_factory=ClientIds)
    market_data_type: dict[str, MarketDataType] = Field(
        default_factory=lambda: dict(_DEFAULT_DATA_TYPES),
        description="reqMarketDataType per mode: 1 live, 2 frozen, 3 delayed, 4 delayed-frozen",
    )
    connect_timeout_s: float = Field(default=10.0, gt=0, le=120)
    request_timeout_s: float = Field(
        default=15.0, gt=0, le=300, description="longest wait for a TWS answer an order depends on (qualify, sync)"
    )
    heartbeat_interval_s: float = Field(default=2.0, gt=0, le=60)
    heartbeat_timeout_s: float = Field(default=3.0, gt=0, le=60)
    heartbeat_misses_before_reconnect: int = Field(default=3, ge=1, le=100)
    reconnect_backoff_s: list[float] = Field(default_factory=lambda: [0.25, 0.5, 1.0, 2.0, 5.0, 10.0], min_length=1)
    pacing: Pacing = Field(default_factory=Pacing)
    max_market_data_lines: int = Field(default=100, ge=1, description="TWS's simultaneous L1 line allowance")
    underlyings: list[str] = Field(default_factory=lambda: ["SPY", "QQQ", "IWM", "SPX"], min_length=1)
    underlying_generic_ticks: str = Field(default="233,225,165", description="RT volume, auction, 52-week stats")
    tick_by_tick: list[str] = Field(default_factory=lambda: ["SPY", "QQQ"])
    realtime_bars: list[str] = Field(default_factory=lambda: ["SPY", "QQQ", "IWM"])
    options: OptionSelection = Field(default_factory=OptionSelection)
    depth: DepthSettings = Field(default_factory=DepthSettings)
    quote_coalesce_ms: int = Field(default=100, ge=0, le=10000, description="at most one record per ticker per")
    reconcile_interval_s: float = Field(
        default=60.0, gt=0, le=3600, description="execution role: ledger positions vs the broker's, every"
    )
    simulator: TwsSimulatorSettings = Field(default_factory=TwsSimulatorSettings)

    @field_validator("underlyings", "tick_by_tick", "realtime_bars")
    @classmethod
    def _check_symbols(cls, value: list[str]) -> list[str]:
        return [_symbol(v) for v in value]

    @field_validator("reconnect_backoff_s")
    @classmethod
    def _check_backoff(cls, value: list[float]) -> list[float]:
        if any(not v > 0 for v in value):
            raise ValueError("every backoff step must be > 0 seconds")
        return value

    @field_validator("market_data_type")
    @classmethod
    def _check_modes(cls, value: dict[str, MarketDataType]) -> dict[str, MarketDataType]:
        unknown = set(value) - {"live", "paper", "sim", "replay"}
        if unknown:
            raise ValueError(f"unknown modes {sorted(unknown)}; expected live, paper, sim, replay")
        return value

    def data_type_for(self, mode: str) -> MarketDataType:
        """The market data type of ``mode`` (live data unless configured otherwise)."""
        return self.market_data_type.get(mode, 1)
