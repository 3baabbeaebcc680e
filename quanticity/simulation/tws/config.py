"""Configuration of the TWS-protocol simulator: account, pacing, data cadence, entitlements, fills.

Defaults follow real TWS where it has a documented number (50 messages per second,
3 depth subscriptions per connection, 10 depth rows, 5-second real-time bars, error
codes) and choose a dev-friendly value where TWS is merely slow (account updates every
few seconds instead of every three minutes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

__all__ = ["SERVER_VERSION", "TwsSimConfig"]

SERVER_VERSION = 176  # the newest layout ib_insync 0.9.86 knows (tws.md §2)


@dataclass(frozen=True, slots=True)
class TwsSimConfig:
    """Everything the TWS simulator needs besides the market and the clock.

    Attributes:
        accounts: managed account codes; the first is the one orders and positions use.
        server_version: the highest version offered; the client gets ``min(its max, this)``.
        first_order_id: ``nextValidId`` for a client id that has placed no orders yet.
        tick_interval_s: how often every market-data subscription is re-quoted (wall time).
        pnl_interval_s: how often reqPnL / reqPnLSingle values are re-marked and pushed on change.
        account_push_interval_s: how often subscribed account values and portfolio rows are re-sent
            (real TWS: every 3 minutes; fills always push at once).
        not_entitled: symbols without a live market-data subscription (options follow their underlying).
        delayed_minutes: how far delayed data lags the live market.
        max_messages_per_second: client messages per rolling second before error 100.
        max_depth_subscriptions: simultaneous reqMktDepth per connection before error 309.
        depth_rows: the deepest book served per side (requests ask for up to this many).
        starting_cash: the simulated account's cash at start.
        stock_commission_per_share: IBKR Fixed: $0.005 per share, at least $1, at most 1% of value.
        option_commission_per_contract: IBKR Fixed: $0.65 per contract, at least $1.
        enforce_regular_hours: when True, DAY orders without ``outsideRth`` fill only 09:30-16:00 ET.
        farm_notices: send the 2104/2106/2158 "farm connection is OK" notices after connect.
    """

    accounts: tuple[str, ...] = ("DU1234567",)
    server_version: int = 176
    first_order_id: int = 1
    tick_interval_s: float = 0.25
    pnl_interval_s: float = 1.0
    account_push_interval_s: float = 3.0
    not_entitled: frozenset[str] = field(default_factory=frozenset)
    delayed_minutes: int = 15
    max_messages_per_second: int = 50
    max_depth_subscriptions: int = 3
    depth_rows: int = 10
    starting_cash: Decimal = Decimal("1000000")
    stock_commission_per_share: Decimal = Decimal("0.005")
    option_commission_per_contract: Decimal = Decimal("0.65")
    enforce_regular_hours: bool = False
    farm_notices: bool = True

    def __post_init__(self) -> None:
        if not self.accounts or any(not a or "," in a for a in self.accounts):
            raise ValueError(f"accounts must be non-empty codes without commas, got {self.accounts!r}")
        if not 157 <= self.server_version <= SERVER_VERSION:
            raise ValueError(f"server_version must be in 157..{SERVER_VERSION}, got {self.server_version}")
        if self.tick_interval_s <= 0 or self.pnl_interval_s <= 0 or self.account_push_interval_s <= 0:
            raise ValueError("intervals must be positive")
        if self.max_messages_per_second < 1 or self.max_depth_subscriptions < 0 or self.depth_rows < 1:
            raise ValueError("pacing and depth limits must be positive")

    @property
    def account(self) -> str:
        """The account orders, positions and P&L belong to."""
        return self.accounts[0]

    def entitled(self, symbol: str) -> bool:
        """Whether live data may be served for ``symbol`` (an underlying symbol)."""
        return symbol.upper() not in self.not_entitled
